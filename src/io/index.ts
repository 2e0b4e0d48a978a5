/** Importing PyTorch checkpoints (torch.save / Lightning .ckpt) safely: zip reader, data-only unpickler, tensors. */
export * from './zip.js';
export * from './pickle.js';
export * from './torchckpt.js';
export * from './statedict.js';
