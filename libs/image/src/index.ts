export * from './cpio-newc-writer.js';
export * from './image-tree.js';
export * from './rootfs-readers.js';
export * from './image-source-resolver.js';
export * from './kernel-modules.js';
export * from './image-assembly.js';
export * from './image-builder.js';
