export { RegistryClient, RegistryError, parseChallenge, type RegistryClientOptions, type RegistryLogin } from './client';
