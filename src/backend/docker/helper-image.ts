import type { BackendLogger } from './logger';
import type { Engine } from './engine';
import { engineMessage, isNotFound, wrapEngineError } from './errors';
import { HELPER_CHANGES, HELPER_IMAGE, HELPER_REPO, HELPER_TAG, helperRootfs } from './helper';
import { readProgress } from './streams';

/**
 * The helper image on one engine: imported from helperRootfs when it is missing (nothing can be
 * pulled), once per process, and again when someone removed it behind our back.
 */
export class HelperImage {
  private made: Promise<void> | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly log: BackendLogger,
  ) {}

  /** Makes sure the image exists. */
  ensure(): Promise<void> {
    this.made ??= (async () => {
      try {
        await this.engine.inspectImage(HELPER_IMAGE);
        return;
      } catch (err) {
        if (!isNotFound(err)) throw wrapEngineError(err, `inspecting the helper image ${HELPER_IMAGE}`);
      }
      this.log.info({ image: HELPER_IMAGE }, 'creating the helper image');
      try {
        const progress = await this.engine.importImage(helperRootfs(), HELPER_REPO, HELPER_TAG, HELPER_CHANGES);
        await readProgress(progress as AsyncIterable<Buffer>);
      } catch (err) {
        throw wrapEngineError(err, `creating the helper image ${HELPER_IMAGE}`);
      }
      this.log.info({ image: HELPER_IMAGE }, 'helper image created');
    })();
    const made = this.made;
    made.catch(() => {
      if (this.made === made) this.made = undefined;
    });
    return made;
  }

  /**
   * Creates a container of the image (made first if it is missing); when the image turns out to
   * have been removed meanwhile, makes it again, once. Engine errors are returned as they are.
   */
  async createContainer(spec: Record<string, unknown>, create: (spec: Record<string, unknown>) => Promise<string>): Promise<string> {
    for (let tries = 0; ; tries++) {
      await this.ensure();
      try {
        return await create(spec);
      } catch (err) {
        if (tries === 0 && isNotFound(err) && /no such image/i.test(engineMessage(err))) {
          this.made = undefined;
          continue;
        }
        throw err;
      }
    }
  }
}
