// The engine: createEngine() gives a Node app continuous batching over real KV pools, with
// the baseline, LayerKV and Cake policies, and a token stream per request.
export { createEngine } from './engine.js';
export { EngineExecutor, type SeqInfo, type SeqTraffic } from './executor.js';
export { engineCost, type EngineCostOptions } from './cost.js';
export * from './types.js';
export { calibrateEngineCost, type Calibration, type CalibrateOptions } from './calibrate.js';
export { fitEngineSteps, type StepFit, type StepFitOptions } from './refit.js';
export { engineFingerprint, modelIdOfDir, modelIdOfDummy, type EngineStoreOptions } from './prefix.js';
