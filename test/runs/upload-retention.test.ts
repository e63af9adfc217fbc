import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeOldUploads } from '../../src/runs/upload-retention';

describe('removeOldUploads', () => {
  it('removes uploads older than the limit, keeps newer ones and anything that is not a file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-uploads-'));
    try {
      const now = Date.now();
      writeFileSync(join(dir, 'old.tar'), 'x');
      writeFileSync(join(dir, 'new.tar'), 'x');
      mkdirSync(join(dir, 'sub'));
      const threeDaysAgo = (now - 3 * 24 * 3600 * 1000) / 1000;
      utimesSync(join(dir, 'old.tar'), threeDaysAgo, threeDaysAgo);
      utimesSync(join(dir, 'sub'), threeDaysAgo, threeDaysAgo);
      expect(await removeOldUploads(dir, 2 * 24 * 3600 * 1000, now)).toEqual(['old.tar']);
      expect(readdirSync(dir).sort()).toEqual(['new.tar', 'sub']);
      expect(await removeOldUploads(join(dir, 'missing'), 1000, now)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
