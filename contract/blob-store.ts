import fs from 'node:fs/promises';
import path from 'node:path';

/** Where jobs find their inputs and leave their outputs: S3 in AWS, a directory locally. */
export interface BlobStore {
  get(key: string): Promise<Uint8Array>;
  put(key: string, body: Uint8Array | string, contentType: string): Promise<void>;
}

/** A BlobStore on a local directory: keys are relative paths under `root`. */
export class DirectoryBlobStore implements BlobStore {
  constructor(readonly root: string) {}

  async get(key: string): Promise<Uint8Array> {
    return fs.readFile(this.pathOf(key));
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const file = this.pathOf(key);
    await fs.mkdir(path.dirname(file), { recursive: true });
    // write then rename: a reader never sees half a file
    const partial = `${file}.partial-${process.pid}`;
    await fs.writeFile(partial, body);
    await fs.rename(partial, file);
  }

  pathOf(key: string): string {
    const file = path.resolve(this.root, key);
    if (!file.startsWith(path.resolve(this.root) + path.sep)) throw new Error(`key ${key} leaves the store`);
    return file;
  }
}
