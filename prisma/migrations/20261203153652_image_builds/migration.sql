-- CreateEnum
CREATE TYPE "ImageBuildStatus" AS ENUM ('queued', 'running', 'succeeded', 'failed');

-- CreateTable
CREATE TABLE "image_build" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "spec" JSONB NOT NULL,
    "status" "ImageBuildStatus" NOT NULL DEFAULT 'queued',
    "attempt" INTEGER NOT NULL DEFAULT 0,
    "maxAttempts" INTEGER NOT NULL DEFAULT 2,
    "progressPercent" INTEGER NOT NULL DEFAULT 0,
    "progressMessage" TEXT NOT NULL DEFAULT '',
    "runnerId" TEXT,
    "heartbeatAt" TIMESTAMP(3),
    "error" TEXT,
    "warnings" JSONB NOT NULL DEFAULT '[]',
    "sha256" TEXT,
    "size" BIGINT,
    "entries" INTEGER,
    "outputRef" TEXT,
    "createdBy" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "image_build_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "image_build_status_heartbeatAt_idx" ON "image_build"("status", "heartbeatAt");
