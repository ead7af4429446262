// What each way of publishing a segment costs on a shared file system, with a reader listing the
// folder from a second mount (docs/DEPLOY-CEPHFS.md, "Metadata operations off the commit path").
//   node infra/ceph/measure-protocols.mjs WRITER_MOUNT_DIR [READER_MOUNT_DIR] [SEGMENTS]
// The two directories must be the same folder seen through two mounts (e.g. mnt/n1/x and mnt/n2/x).
import fs from 'node:fs';
import { setImmediate } from 'node:timers';
import path from 'node:path';
const [wdir, rdir, nStr] = process.argv.slice(2);
const N = Number(nStr ?? 200);
const bytes = Buffer.alloc(8192, 7);
const ms = (t) => Number(process.hrtime.bigint() - t) / 1e6;
function stats(name, arr) {
  arr.sort((a, b) => a - b);
  const avg = arr.reduce((a, b) => a + b, 0) / arr.length;
  console.log(
    name.padEnd(40),
    'avg',
    avg.toFixed(2),
    'p50',
    arr[arr.length >> 1].toFixed(2),
    'p99',
    arr[Math.floor(arr.length * 0.99)].toFixed(2),
    'ms',
  );
}
function startReader(dir) {
  if (!rdir) return;
  let stop = false;
  const loop = () => {
    if (stop) return;
    try {
      fs.readdirSync(dir);
    } catch {}
    setTimeout(loop, 5);
  };
  loop();
  return () => {
    stop = true;
  };
}
async function run(name, fn) {
  const dir = path.join(wdir, name + '-' + process.pid);
  fs.mkdirSync(dir, { recursive: true });
  const stopReader = startReader(rdir ? path.join(rdir, name + '-' + process.pid) : undefined);
  const dfd = fs.openSync(dir, 'r');
  const times = [];
  const ctx = { dir, dfd, spare: undefined, logfd: undefined };
  for (let i = 0; i < N; i++) {
    const t = process.hrtime.bigint();
    fn(ctx, i);
    times.push(ms(t));
    await new Promise((r) => setImmediate(r));
  }
  stopReader?.();
  stats(name, times);
}
const seg = (dir, i) => path.join(dir, String(i).padStart(20, '0') + '.seg');
await run('current', ({ dir, dfd }, i) => {
  const tmp = path.join(dir, `.tmp-${i}`);
  const fd = fs.openSync(tmp, 'wx');
  fs.writeSync(fd, bytes);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.linkSync(tmp, seg(dir, i));
  fs.fsyncSync(dfd);
  fs.rmSync(tmp);
  const h = fs.openSync(path.join(dir, 'HEAD'), fs.constants.O_WRONLY | fs.constants.O_CREAT);
  fs.writeSync(h, String(i), 0);
  fs.closeSync(h);
});
await run('no-head-unlink-after', ({ dir, dfd }, i) => {
  const tmp = path.join(dir, `.tmp-${i}`);
  const fd = fs.openSync(tmp, 'wx');
  fs.writeSync(fd, bytes);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.linkSync(tmp, seg(dir, i));
  fs.fsyncSync(dfd);
});
const pre = (ctx, i) => {
  const { dir, dfd } = ctx;
  if (!ctx.spare) {
    const t = path.join(dir, `.tmp-${i}`);
    ctx.spare = { t, fd: fs.openSync(t, 'wx') };
  }
  const { t, fd } = ctx.spare;
  fs.writeSync(fd, bytes);
  fs.fsyncSync(fd);
  fs.linkSync(t, seg(dir, i));
  fs.fsyncSync(dfd);
  return () => {
    fs.closeSync(fd);
    fs.rmSync(t);
    const n = path.join(dir, `.tmp-${i + 1}`);
    ctx.spare = { t: n, fd: fs.openSync(n, 'wx') };
  };
};
await run('precreated (critical path only)', (ctx, i) => setImmediate(pre(ctx, i)));
await run('excl-create-final', ({ dir, dfd }, i) => {
  const fd = fs.openSync(seg(dir, i), 'wx');
  fs.writeSync(fd, bytes);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.fsyncSync(dfd);
});
await run('excl-create-final no dirfsync', ({ dir }, i) => {
  const fd = fs.openSync(seg(dir, i), 'wx');
  fs.writeSync(fd, bytes);
  fs.fdatasyncSync(fd);
  fs.closeSync(fd);
});
await run('append one file + fdatasync', (ctx) => {
  if (ctx.logfd === undefined) ctx.logfd = fs.openSync(path.join(ctx.dir, 'term.log'), 'a');
  fs.writeSync(ctx.logfd, bytes);
  fs.fdatasyncSync(ctx.logfd);
});
