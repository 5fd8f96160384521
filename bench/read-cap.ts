import fs from 'node:fs';
import path from 'node:path';

/**
 * A cap on how fast child processes read from the disk that holds a directory: the kernel's block-I/O
 * throttle (cgroup v1 `blkio.throttle.read_bps_device`, or cgroup v2 `io.max`), in a cgroup of its own.
 *
 * Why: a virtual disk's host can serve "cold" reads from its own cache at several GB/s, far faster
 * than the volume a worker loads from in production (a gp3 volume reads 125 MiB/s unless more is
 * provisioned). Capping the reads of the children that read and load the model shows the cold start
 * on such a disk, with the same code and files. Only reads that reach the disk are slowed: empty the
 * page cache first.
 *
 * It is not a slow disk in every respect. The throttle budgets in time slices (100 ms on this machine's
 * disk, which says it is rotational; 20 ms on others): a process whose reads pause for longer than a
 * slice may then read a slice's worth at once (12.5 MiB at 125 MiB/s). A start that alternates
 * computing and reading is flattered by up to a slice per such pause; over the whole start it can never
 * read faster than the cap. Latency per read is not added.
 */
export interface ReadCap {
  mibPerSecond: number;
  /** `command args…` as a command that first enters the cap's cgroup and then execs it. */
  wrap(command: string, args: string[]): [string, string[]];
  /** Bytes the cgroup's processes have read from the disk so far. */
  bytesRead(): number;
  /** Removes the cgroup (its processes must have exited). */
  release(): void;
}

const V1_ROOT = '/sys/fs/cgroup/blkio';
const V2_ROOT = '/sys/fs/cgroup';

/** The cap, or why there cannot be one here (not root, no throttling controller, not a block device). */
export function readCap(dir: string, mibPerSecond: number): ReadCap | { unavailable: string } {
  const device = wholeDiskOf(dir);
  if (typeof device !== 'string') return device;
  const bytesPerSecond = Math.round(mibPerSecond * 2 ** 20);
  const name = `anole-bench-read-cap-${process.pid}-${mibPerSecond}`;
  try {
    let group: string;
    let bytesRead: () => number;
    if (fs.existsSync(path.join(V1_ROOT, 'blkio.throttle.read_bps_device'))) {
      group = path.join(V1_ROOT, name);
      fs.mkdirSync(group);
      fs.writeFileSync(path.join(group, 'blkio.throttle.read_bps_device'), `${device} ${bytesPerSecond}`);
      // lines "MAJ:MIN Read N"
      bytesRead = () => counter(path.join(group, 'blkio.throttle.io_service_bytes'), new RegExp(`^${device} Read (\\d+)$`, 'm'));
    } else if (fs.readFileSync(path.join(V2_ROOT, 'cgroup.controllers'), 'utf8').split(/\s+/).includes('io')) {
      fs.writeFileSync(path.join(V2_ROOT, 'cgroup.subtree_control'), '+io');
      group = path.join(V2_ROOT, name);
      fs.mkdirSync(group);
      fs.writeFileSync(path.join(group, 'io.max'), `${device} rbps=${bytesPerSecond}`);
      // lines "MAJ:MIN rbytes=N wbytes=N …"
      bytesRead = () => counter(path.join(group, 'io.stat'), new RegExp(`^${device} .*\\brbytes=(\\d+)`, 'm'));
    } else {
      return { unavailable: 'no block-I/O throttle here (neither cgroup v1 blkio nor cgroup v2 io)' };
    }
    const procs = path.join(group, 'cgroup.procs');
    return {
      mibPerSecond,
      // $0 is the cgroup's process list, "$@" the command: the shell moves itself in, then becomes the command
      wrap: (command, args) => ['/bin/sh', ['-c', 'echo $$ > "$0" && exec "$@"', procs, command, ...args]],
      bytesRead,
      release: () => fs.rmdirSync(group),
    };
  } catch (error) {
    // a cgroup made before the failing write goes again (cgroup directories are removed with rmdir)
    for (const root of [V1_ROOT, V2_ROOT]) if (fs.existsSync(path.join(root, name))) fs.rmdirSync(path.join(root, name));
    return { unavailable: `cannot set a read cap: ${(error as Error).message}` };
  }
}

/** A counter from a cgroup's statistics file (0 before the first I/O, when the device has no line yet). */
function counter(file: string, pattern: RegExp): number {
  const match = pattern.exec(fs.readFileSync(file, 'utf8'));
  return match ? Number(match[1]) : 0;
}

/** "MAJOR:MINOR" of the whole disk holding `dir` (the throttle takes disks, not partitions). */
function wholeDiskOf(dir: string): string | { unavailable: string } {
  const dev = fs.statSync(dir, { bigint: true }).dev;
  // Linux's dev_t encoding (glibc's major() and minor())
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const sys = `/sys/dev/block/${major}:${minor}`;
  if (!fs.existsSync(sys)) return { unavailable: `${dir} is not on a block device (device ${major}:${minor}; an overlay or tmpfs?)` };
  const real = fs.realpathSync(sys);
  const disk = fs.existsSync(path.join(real, 'partition')) ? path.dirname(real) : real;
  return fs.readFileSync(path.join(disk, 'dev'), 'utf8').trim();
}
