// Moved to libs/ifupdown (the image builder renders the same files); kept so the capability's imports stay short.
export * from '@ibex/ifupdown';
