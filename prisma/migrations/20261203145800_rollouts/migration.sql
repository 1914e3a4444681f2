-- CreateEnum
CREATE TYPE "RolloutStatus" AS ENUM ('scheduled', 'running', 'paused', 'waiting_approval', 'rolling_back', 'succeeded', 'failed', 'aborted');

-- CreateEnum
CREATE TYPE "RolloutTargetState" AS ENUM ('pending', 'in_progress', 'succeeded', 'failed', 'rolled_back', 'skipped');

-- CreateTable
CREATE TABLE "rollout" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "status" "RolloutStatus" NOT NULL DEFAULT 'scheduled',
    "target" JSONB NOT NULL,
    "payload" JSONB NOT NULL,
    "strategy" JSONB NOT NULL,
    "start" JSONB NOT NULL,
    "deadline" TIMESTAMP(3),
    "includeNewDevices" BOOLEAN NOT NULL DEFAULT false,
    "autoRollback" BOOLEAN NOT NULL DEFAULT false,
    "approvedThrough" INTEGER NOT NULL DEFAULT -1,
    "reason" TEXT,
    "scheduleId" UUID,
    "createdBy" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "rollout_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "rollout_wave" (
    "rolloutId" UUID NOT NULL,
    "index" INTEGER NOT NULL,
    "name" TEXT NOT NULL,
    "requiresApproval" BOOLEAN NOT NULL DEFAULT false,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "rollout_wave_pkey" PRIMARY KEY ("rolloutId","index")
);

-- CreateTable
CREATE TABLE "rollout_target" (
    "rolloutId" UUID NOT NULL,
    "deviceId" UUID NOT NULL,
    "deviceName" TEXT NOT NULL,
    "wave" INTEGER NOT NULL,
    "state" "RolloutTargetState" NOT NULL DEFAULT 'pending',
    "reason" TEXT,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "jobId" UUID,
    "previous" JSONB,
    "rollbackJobId" UUID,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "rollout_target_pkey" PRIMARY KEY ("rolloutId","deviceId")
);

-- CreateTable
CREATE TABLE "rollout_schedule" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "cron" TEXT NOT NULL,
    "timeZone" TEXT NOT NULL,
    "template" JSONB NOT NULL,
    "paused" BOOLEAN NOT NULL DEFAULT false,
    "lastRunAt" TIMESTAMP(3),
    "createdBy" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "rollout_schedule_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "rollout_status_idx" ON "rollout"("status");

-- CreateIndex
CREATE UNIQUE INDEX "rollout_target_jobId_key" ON "rollout_target"("jobId");

-- CreateIndex
CREATE UNIQUE INDEX "rollout_target_rollbackJobId_key" ON "rollout_target"("rollbackJobId");

-- CreateIndex
CREATE INDEX "rollout_target_rolloutId_wave_state_idx" ON "rollout_target"("rolloutId", "wave", "state");

-- CreateIndex
CREATE UNIQUE INDEX "rollout_schedule_name_key" ON "rollout_schedule"("name");

-- AddForeignKey
ALTER TABLE "rollout" ADD CONSTRAINT "rollout_scheduleId_fkey" FOREIGN KEY ("scheduleId") REFERENCES "rollout_schedule"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "rollout_wave" ADD CONSTRAINT "rollout_wave_rolloutId_fkey" FOREIGN KEY ("rolloutId") REFERENCES "rollout"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "rollout_target" ADD CONSTRAINT "rollout_target_rolloutId_fkey" FOREIGN KEY ("rolloutId") REFERENCES "rollout"("id") ON DELETE CASCADE ON UPDATE CASCADE;
