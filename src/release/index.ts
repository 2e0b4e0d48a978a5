/** Official ImageBART releases: reading their configs, inspecting them, importing them as a model directory. */
export * from './files.js';
export * from './config.js';
export * from './inspect.js';
export * from './import.js';
