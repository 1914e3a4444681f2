-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "TokenRole" AS ENUM ('admin', 'operator', 'viewer');

-- CreateEnum
CREATE TYPE "SectionState" AS ENUM ('pending', 'in_sync', 'applying', 'failed', 'drifted', 'unsupported', 'reverted');

-- CreateEnum
CREATE TYPE "JobStatus" AS ENUM ('queued', 'delivered', 'running', 'succeeded', 'failed', 'cancelled', 'expired', 'timed_out', 'rejected');

-- CreateTable
CREATE TABLE "api_token" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "role" "TokenRole" NOT NULL DEFAULT 'admin',
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "createdById" UUID,
    "expiresAt" TIMESTAMP(3),
    "lastUsedAt" TIMESTAMP(3),
    "revokedAt" TIMESTAMP(3),

    CONSTRAINT "api_token_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "enrollment_token" (
    "id" UUID NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "labels" JSONB NOT NULL DEFAULT '{}',
    "expiresAt" TIMESTAMP(3) NOT NULL,
    "maxUses" INTEGER,
    "uses" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "createdById" UUID,
    "revokedAt" TIMESTAMP(3),

    CONSTRAINT "enrollment_token_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "device" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "labels" JSONB NOT NULL DEFAULT '{}',
    "facts" JSONB,
    "agentVersion" TEXT,
    "enrolledAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "enrollmentTokenId" UUID,
    "lastSeenAt" TIMESTAMP(3),
    "connectedAt" TIMESTAMP(3),
    "connectedTo" TEXT,
    "bootId" TEXT,
    "revokedAt" TIMESTAMP(3),
    "desiredRevision" INTEGER NOT NULL DEFAULT 0,
    "receivedRevision" INTEGER NOT NULL DEFAULT 0,
    "appliedRevision" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "device_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "device_credential" (
    "id" UUID NOT NULL,
    "deviceId" UUID NOT NULL,
    "hash" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revokedAt" TIMESTAMP(3),

    CONSTRAINT "device_credential_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "desired_revision" (
    "id" UUID NOT NULL,
    "deviceId" UUID NOT NULL,
    "revision" INTEGER NOT NULL,
    "spec" JSONB NOT NULL,
    "message" TEXT NOT NULL DEFAULT '',
    "createdBy" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "desired_revision_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "device_section_state" (
    "deviceId" UUID NOT NULL,
    "section" TEXT NOT NULL,
    "state" "SectionState" NOT NULL,
    "revision" INTEGER NOT NULL,
    "error" TEXT,
    "detail" JSONB,
    "observedAt" TIMESTAMP(3) NOT NULL,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "device_section_state_pkey" PRIMARY KEY ("deviceId","section")
);

-- CreateTable
CREATE TABLE "job" (
    "id" UUID NOT NULL,
    "deviceId" UUID NOT NULL,
    "type" TEXT NOT NULL,
    "params" JSONB NOT NULL DEFAULT '{}',
    "status" "JobStatus" NOT NULL DEFAULT 'queued',
    "attempt" INTEGER NOT NULL DEFAULT 0,
    "maxAttempts" INTEGER NOT NULL DEFAULT 1,
    "timeoutMs" INTEGER NOT NULL,
    "expiresAt" TIMESTAMP(3) NOT NULL,
    "notBefore" TIMESTAMP(3),
    "progressPercent" INTEGER,
    "progressMessage" TEXT,
    "result" JSONB,
    "error" TEXT,
    "cancelRequestedAt" TIMESTAMP(3),
    "createdBy" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deliveredAt" TIMESTAMP(3),
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "job_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "job_event" (
    "id" BIGSERIAL NOT NULL,
    "updateId" TEXT NOT NULL,
    "jobId" UUID NOT NULL,
    "attempt" INTEGER NOT NULL,
    "kind" TEXT NOT NULL,
    "data" JSONB NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "job_event_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "audit_event" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "actorType" TEXT NOT NULL,
    "actorId" TEXT,
    "actorName" TEXT,
    "action" TEXT NOT NULL,
    "targetType" TEXT,
    "targetId" TEXT,
    "data" JSONB NOT NULL DEFAULT '{}',
    "requestId" TEXT,

    CONSTRAINT "audit_event_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "api_token_hash_key" ON "api_token"("hash");

-- CreateIndex
CREATE UNIQUE INDEX "enrollment_token_hash_key" ON "enrollment_token"("hash");

-- CreateIndex
CREATE UNIQUE INDEX "device_name_key" ON "device"("name");

-- CreateIndex
CREATE INDEX "device_lastSeenAt_idx" ON "device"("lastSeenAt");

-- CreateIndex
CREATE UNIQUE INDEX "device_credential_hash_key" ON "device_credential"("hash");

-- CreateIndex
CREATE INDEX "device_credential_deviceId_idx" ON "device_credential"("deviceId");

-- CreateIndex
CREATE UNIQUE INDEX "desired_revision_deviceId_revision_key" ON "desired_revision"("deviceId", "revision");

-- CreateIndex
CREATE INDEX "job_deviceId_status_idx" ON "job"("deviceId", "status");

-- CreateIndex
CREATE INDEX "job_status_createdAt_idx" ON "job"("status", "createdAt");

-- CreateIndex
CREATE UNIQUE INDEX "job_event_updateId_key" ON "job_event"("updateId");

-- CreateIndex
CREATE INDEX "job_event_jobId_id_idx" ON "job_event"("jobId", "id");

-- CreateIndex
CREATE INDEX "audit_event_at_idx" ON "audit_event"("at");

-- CreateIndex
CREATE INDEX "audit_event_targetType_targetId_idx" ON "audit_event"("targetType", "targetId");

-- AddForeignKey
ALTER TABLE "device" ADD CONSTRAINT "device_enrollmentTokenId_fkey" FOREIGN KEY ("enrollmentTokenId") REFERENCES "enrollment_token"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "device_credential" ADD CONSTRAINT "device_credential_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "device"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "desired_revision" ADD CONSTRAINT "desired_revision_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "device"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "device_section_state" ADD CONSTRAINT "device_section_state_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "device"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "job" ADD CONSTRAINT "job_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "device"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "job_event" ADD CONSTRAINT "job_event_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "job"("id") ON DELETE CASCADE ON UPDATE CASCADE;
