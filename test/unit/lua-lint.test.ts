import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The Lua Berth ships runs inside every load balancer and is only ever called by
// generated config, so it is linted like any other source: luacheck with the repo's
// .luacheckrc (hack/ensure-debian-packages.sh installs luacheck).
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const LUA_DIR = 'src/nginx/lua';

describe('shipped Lua', () => {
  it('passes luacheck without warnings', () => {
    const files = readdirSync(`${REPO}${LUA_DIR}`, { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.lua'))
      .map((file) => `${LUA_DIR}/${file}`);
    expect(files.length).toBeGreaterThan(0);

    const result = spawnSync('luacheck', ['--no-color', LUA_DIR], { cwd: REPO, encoding: 'utf8' });
    expect(result.error, 'luacheck must be installed (hack/ensure-debian-packages.sh)').toBeUndefined();
    expect(result.status, result.stdout + result.stderr).toBe(0);
    for (const file of files) expect(result.stdout).toContain(`Checking ${file}`);
    expect(result.stdout).toMatch(new RegExp(`Total: 0 warnings / 0 errors in ${files.length} files`));
  });
});
