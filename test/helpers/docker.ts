import Dockerode from 'dockerode';
import { LABEL_RUN } from '../../src/backend/types';

export const docker = new Dockerode();

/** Everything the engine still holds for a run id: must be empty once a run has ended. */
export async function leftovers(runId: string): Promise<string[]> {
  const filters = { label: [`${LABEL_RUN}=${runId}`] };
  const [containers, networks, volumes] = await Promise.all([
    docker.listContainers({ all: true, filters }),
    docker.listNetworks({ filters }),
    docker.listVolumes({ filters }),
  ]);
  return [
    ...containers.map((c) => `container ${c.Names.join(',')}`),
    ...networks.map((n) => `network ${n.Name}`),
    ...(volumes.Volumes ?? []).map((v) => `volume ${v.Name}`),
  ];
}
