-- CreateTable
CREATE TABLE "device_certificate" (
    "id" UUID NOT NULL,
    "deviceId" UUID NOT NULL,
    "serial" TEXT NOT NULL,
    "fingerprint" TEXT NOT NULL,
    "notBefore" TIMESTAMP(3) NOT NULL,
    "notAfter" TIMESTAMP(3) NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revokedAt" TIMESTAMP(3),

    CONSTRAINT "device_certificate_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "device_ca" (
    "id" TEXT NOT NULL,
    "certPem" TEXT NOT NULL,
    "keyPem" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "device_ca_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "device_revokedAt_idx" ON "device"("revokedAt");

-- CreateIndex
CREATE INDEX "device_credential_revokedAt_idx" ON "device_credential"("revokedAt");

-- CreateIndex
CREATE UNIQUE INDEX "device_certificate_serial_key" ON "device_certificate"("serial");

-- CreateIndex
CREATE UNIQUE INDEX "device_certificate_fingerprint_key" ON "device_certificate"("fingerprint");

-- CreateIndex
CREATE INDEX "device_certificate_deviceId_idx" ON "device_certificate"("deviceId");

-- CreateIndex
CREATE INDEX "device_certificate_revokedAt_idx" ON "device_certificate"("revokedAt");

-- AddForeignKey
ALTER TABLE "device_certificate" ADD CONSTRAINT "device_certificate_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "device"("id") ON DELETE CASCADE ON UPDATE CASCADE;
