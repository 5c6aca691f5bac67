import { NotFoundError, SchedError } from '@sched/core';
import { isZkError, listSubtree, secureTree, type ZkSession, type ZnodeStat } from '@sched/registry';
import type { Command } from 'commander';
import { printJson, printTable } from './output.js';
import { withContext } from './with-context.js';

/**
 * `zk ls [PATH] [-R]` and `zk get PATH`: read-only znode inspection for operators; `zk secure`:
 * the digest ACL of SCHED_ZK_AUTH on the whole tree (docs/security.md#zookeeper).
 */

export interface ZnodeStatJson {
  /** Hex session id owning an ephemeral node; null for a persistent node. */
  ephemeralOwner: string | null;
  created: string;
  modified: string;
  version: number;
  czxid: string;
  mzxid: string;
  dataLength: number;
  numChildren: number;
}

function statJson(s: ZnodeStat): ZnodeStatJson {
  return {
    ephemeralOwner: s.ephemeralOwner ?? null,
    created: new Date(s.ctime).toISOString(),
    modified: new Date(s.mtime).toISOString(),
    version: s.version,
    czxid: `0x${s.czxid.toString(16)}`,
    mzxid: `0x${s.mzxid.toString(16)}`,
    dataLength: s.dataLength,
    numChildren: s.numChildren,
  };
}

function checkPath(path: string): string {
  if (!/^\/([^/\0]+(\/[^/\0]+)*)?$/.test(path)) {
    throw new NotFoundError(`${JSON.stringify(path)} is not an absolute znode path (like /sched/masters)`);
  }
  return path;
}

async function stat(session: ZkSession, path: string): Promise<ZnodeStat> {
  const s = await session.exists(path);
  if (!s) throw new NotFoundError(`znode ${path} does not exist`);
  return s;
}

export function zkCommands(program: Command): void {
  const zk = program
    .command('zk')
    .description('ZooKeeper inspection (reads ZooKeeper directly) and securing the tree (zk secure)');
  zk.command('ls')
    .description('List the children of a znode (default: the sched root), or the whole subtree with -R')
    .argument('[path]', 'absolute znode path; default the configured root (SCHED_ZK_ROOT)')
    .option('-R, --recursive', 'list the whole subtree')
    .option('--json', 'print JSON [{ path, ephemeralOwner, numChildren, dataLength, modified }]')
    .action(async function (this: Command, pathArg: string | undefined) {
      await withContext(this, async (ctx, opts) => {
        const session = await ctx.zk();
        const path = checkPath(pathArg ?? ctx.paths.root);
        await stat(session, path);
        let paths: string[];
        if (opts.recursive) paths = (await listSubtree(session, path)).filter((p) => p !== path);
        else {
          const { children } = await session.getChildren(path);
          paths = children.sort().map((c) => (path === '/' ? `/${c}` : `${path}/${c}`));
        }
        const rows = (
          await Promise.all(
            paths.map(async (p) => {
              const s = await session.exists(p).catch((err) => {
                if (isZkError(err, 'NO_NODE')) return undefined;
                throw err;
              });
              return s ? { path: p, s } : null; // gone while listing
            }),
          )
        ).filter((r): r is { path: string; s: ZnodeStat } => r !== null);
        if (opts.json) {
          return printJson(
            rows.map(({ path: p, s }) => ({
              path: p,
              ephemeralOwner: s.ephemeralOwner ?? null,
              numChildren: s.numChildren,
              dataLength: s.dataLength,
              modified: new Date(s.mtime).toISOString(),
            })),
          );
        }
        if (rows.length === 0) return void process.stdout.write(`${path} has no children\n`);
        printTable(
          ['PATH', 'EPHEMERAL OWNER', 'CHILDREN', 'BYTES', 'MODIFIED'],
          rows.map(({ path: p, s }) => [
            opts.recursive ? p : p.slice(p.lastIndexOf('/') + 1),
            s.ephemeralOwner ? `0x${s.ephemeralOwner}` : '',
            s.numChildren,
            s.dataLength,
            new Date(s.mtime).toISOString(),
          ]),
        );
      });
    });
  zk.command('get')
    .description(
      'Show a znode: its data (JSON pretty-printed) and stat (ephemeral owner, created, modified, version)',
    )
    .argument('<path>', 'absolute znode path')
    .option('--json', 'print JSON { path, data, stat }')
    .action(async function (this: Command, pathArg: string) {
      await withContext(this, async (ctx, opts) => {
        const session = await ctx.zk();
        const path = checkPath(pathArg);
        let got: { data: Buffer; stat: ZnodeStat };
        try {
          got = await session.getData(path);
        } catch (err) {
          if (isZkError(err, 'NO_NODE')) throw new NotFoundError(`znode ${path} does not exist`);
          throw err;
        }
        const text = got.data.toString('utf8');
        let data: unknown = text;
        try {
          data = text === '' ? null : JSON.parse(text);
        } catch {
          // not JSON: shown as text
        }
        const st = statJson(got.stat);
        if (opts.json) return printJson({ path, data, stat: st });
        process.stdout.write(`${path}\n`);
        process.stdout.write(
          data === null
            ? '(no data)\n'
            : `${typeof data === 'string' ? data : JSON.stringify(data, null, 2)}\n`,
        );
        process.stdout.write('\n');
        printTable(
          ['FIELD', 'VALUE'],
          [
            ['ephemeralOwner', st.ephemeralOwner ? `0x${st.ephemeralOwner}` : 'none (persistent)'],
            ['created', st.created],
            ['modified', st.modified],
            ['version', st.version],
            ['czxid', st.czxid],
            ['mzxid', st.mzxid],
            ['dataLength', st.dataLength],
            ['numChildren', st.numChildren],
          ],
        );
      });
    });
  zk.command('secure')
    .description(
      'Protect the sched tree with the digest ACL of SCHED_ZK_AUTH: sets it on the root and every znode under it ' +
        'whose ACL differs (a tree created without credentials is open to anyone). Refuses, changing nothing, ' +
        'while a live node is registered without credentials, unless --force',
    )
    .option(
      '--force',
      'also lock out live nodes registered without credentials (they can no longer refresh or renew their registration)',
    )
    .option('--dry-run', 'list what would change; change nothing')
    .option(
      '--json',
      'print JSON { root, acl, changed, unchanged, openEphemerals, refused, failed: [{ path, reason }], dryRun }',
    )
    .action(async function (this: Command) {
      await withContext(this, async (ctx, opts) => {
        const session = await ctx.zk();
        const root = ctx.paths.root;
        if (!session.digestId) {
          throw new SchedError(
            'ZK_NO_CREDENTIALS',
            "zk secure needs the credentials to protect the tree with: set SCHED_ZK_AUTH=user:password (the daemons' credentials)",
          );
        }
        if (!(await session.exists(root)))
          throw new NotFoundError(`znode ${root} does not exist: nothing to secure`);
        const dryRun = opts.dryRun === true;
        const r = await secureTree(session, root, { force: opts.force === true, dryRun });
        if (opts.json) printJson({ ...r, dryRun });
        else if (!r.refused) {
          const verb = dryRun ? 'would set' : 'set';
          process.stdout.write(
            `${root}: ${verb} the ACL ${r.acl} on ${r.changed.length} znode(s); ${r.unchanged} already had it\n`,
          );
          for (const p of r.changed) process.stdout.write(`  ${p}\n`);
        }
        if (r.refused) {
          throw new SchedError(
            'ZK_TREE_OPEN',
            `${r.openEphemerals.length} live node(s) are registered without credentials and would be locked out: ` +
              `${r.openEphemerals.join(', ')}. Nothing was changed. Restart them with SCHED_ZK_AUTH set (or stop them) ` +
              'and run this again, or lock them out now with --force',
          );
        }
        if (r.failed.length > 0) {
          throw new SchedError(
            'ZK_TREE_PROTECTED',
            `${r.failed.length} znode(s) could not be secured: ${r.failed.map((f) => `${f.path} (${f.reason})`).join(', ')}`,
          );
        }
      });
    });
}
