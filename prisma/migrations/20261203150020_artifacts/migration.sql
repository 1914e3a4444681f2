-- CreateTable
CREATE TABLE "artifact" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "version" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "sha256" TEXT NOT NULL,
    "size" BIGINT NOT NULL,
    "contentType" TEXT NOT NULL DEFAULT 'application/octet-stream',
    "labels" JSONB NOT NULL DEFAULT '{}',
    "architectures" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "createdBy" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "artifact_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "artifact_sha256_idx" ON "artifact"("sha256");

-- CreateIndex
CREATE INDEX "artifact_createdAt_idx" ON "artifact"("createdAt");

-- CreateIndex
CREATE UNIQUE INDEX "artifact_name_version_key" ON "artifact"("name", "version");
