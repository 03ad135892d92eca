import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export interface OciLayout {
  /** The layout folder, for `oci:<dir>:<tag>`. */
  dir: string;
  /** The ref name in index.json. */
  tag: string;
  /** `sha256:…` of the manifest, which a push must preserve. */
  manifestDigest: string;
  /** `oci:<dir>:<tag>`, ready for skopeo. */
  reference: string;
  remove(): Promise<void>;
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** A NUL-terminated octal field of a ustar header. */
function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/**
 * A POSIX ustar archive holding one regular file. Written by hand so that the tests need nothing
 * but Node, and so that the bytes (hence the digests) are the same on every machine: fixed mtime,
 * owner and mode.
 */
export function tarOneFile(name: string, content: Buffer): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error('tar entry name longer than 100 bytes');
  const header = Buffer.alloc(512, 0);
  header.write(name, 0, 100, 'utf8');
  header.write(octal(0o644, 8), 100, 8, 'ascii'); // mode
  header.write(octal(0, 8), 108, 8, 'ascii'); // uid
  header.write(octal(0, 8), 116, 8, 'ascii'); // gid
  header.write(octal(content.length, 12), 124, 12, 'ascii'); // size
  header.write(octal(0, 12), 136, 12, 'ascii'); // mtime: the epoch, for reproducible digests
  header.write('        ', 148, 8, 'ascii'); // checksum field counts as spaces while summing
  header.write('0', 156, 1, 'ascii'); // typeflag: regular file
  header.write('ustar\0', 257, 6, 'ascii');
  header.write('00', 263, 2, 'ascii');
  header.write('root', 265, 32, 'ascii');
  header.write('root', 297, 32, 'ascii');
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  const padding = Buffer.alloc((512 - (content.length % 512)) % 512, 0);
  // Two zero blocks end the archive.
  return Buffer.concat([header, content, padding, Buffer.alloc(1024, 0)]);
}

/** Go's GOARCH for this machine, so that podman does not warn about (or refuse) a foreign image. */
function goArch(): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return map[process.arch] ?? process.arch;
}

/**
 * Builds a minimal, valid OCI image layout offline: one gzipped layer with one small file, a config
 * whose rootfs.diff_ids names the uncompressed layer, a manifest, index.json and oci-layout.
 */
export async function buildOciLayout(options: { tag?: string; content?: string } = {}): Promise<OciLayout> {
  const tag = options.tag ?? 'v1';
  const dir = await mkdtemp(join(tmpdir(), 'sts-e2e-oci-'));
  try {
    const blobs = join(dir, 'blobs', 'sha256');
    await mkdir(blobs, { recursive: true });
    const putBlob = async (data: Buffer): Promise<{ digest: string; size: number }> => {
      const digest = sha256(data);
      await writeFile(join(blobs, digest.slice('sha256:'.length)), data);
      return { digest, size: data.length };
    };

    const tar = tarOneFile('hello.txt', Buffer.from(options.content ?? 'hello from sts-docker-auth e2e\n'));
    // mtime 0 in the gzip header too (zlib writes 0 unless told otherwise), for stable digests.
    const layer = await putBlob(gzipSync(tar, { level: 9 }));
    const config = await putBlob(
      Buffer.from(
        JSON.stringify({
          architecture: goArch(),
          os: 'linux',
          config: { Cmd: ['/hello.txt'] },
          rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
          history: [{ created_by: 'sts-docker-auth e2e harness' }],
        }),
      ),
    );
    const manifest = await putBlob(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
        }),
      ),
    );
    await writeFile(
      join(dir, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            ...manifest,
            annotations: { 'org.opencontainers.image.ref.name': tag },
          },
        ],
      }),
    );
    await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    return {
      dir,
      tag,
      manifestDigest: manifest.digest,
      reference: `oci:${dir}:${tag}`,
      remove: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
