export * from './busybox-rootfs.js';
export * from './qemu-boot.js';
