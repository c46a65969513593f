// The network lab: see README.md in this folder.
export { Lab, must, run, type AttachOptions, type ExecResult, type LabProcess, type Netns, type Port, type SpawnOptions } from './lab.js';
export { ANNOUNCEMENT_FILTER, PcapReader, decodeFrame, startCapture, type Capture, type CapturedFrame } from './capture.js';
export { startApiForwarder, type ApiForwarder } from './apiforward.js';
export { neighbour, startAgentProcess, type AgentProcess, type AgentProcessOptions } from './agent.js';
