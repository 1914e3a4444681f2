-- AlterTable
ALTER TABLE "audit_event" ADD COLUMN     "key" TEXT;

-- CreateIndex
CREATE UNIQUE INDEX "audit_event_key_key" ON "audit_event"("key");
