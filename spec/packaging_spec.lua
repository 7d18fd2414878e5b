-- Packaging: docker-compose.yml, the Dockerfile, the README's Quick start and
-- moonwatch-scm-1.rockspec agree with each other and with the build.
-- Run from the project root: busted --cpath='build/lib/?.so' spec/packaging_spec.lua

local ROCKSPEC = "moonwatch-scm-1.rockspec"
local BUILD_SCRIPT = "scripts/build" -- the README's run command builds with it

local fixture = require("support.fixture")

local shell_quote = fixture.shell_quote

-- Runs a shell command; returns ok and its output (stdout and stderr).
local function sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1", "r"))
  local out = p:read("a")
  local ok = p:close()
  return ok == true, out
end

local read_file = fixture.read_file

local function lines_of(text)
  local t = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do t[#t + 1] = line end
  return t
end

local function tmpdir()
  local ok, out = sh("mktemp -d")
  assert(ok, "mktemp -d failed: " .. out)
  return (out:gsub("%s+$", ""))
end

local function rmtree(path)
  assert(path:match("^/tmp/."), "refusing to remove " .. path)
  os.execute("rm -rf -- " .. shell_quote(path))
end

local function contains(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end

local function sorted(list)
  local t = { table.unpack(list) }
  table.sort(t)
  return t
end

local function project_version()
  local cmake = assert(read_file("CMakeLists.txt"), "no CMakeLists.txt")
  return assert(cmake:match("project%s*%(%s*moonwatch%s+VERSION%s+([%d.]+)"),
    "no project(moonwatch VERSION x.y.z) in CMakeLists.txt")
end

-- A shell command line with "./" and a leading "exec" dropped: "scripts/test".
local function normalize_command(line)
  line = line:gsub("^%s+", ""):gsub("%s+$", "")
  line = line:gsub("^exec%s+", ""):gsub("^%./", "")
  return line
end

-- Whether a piece of shell runs script (e.g. "scripts/build") as a command.
local function runs_script(text, script)
  local padded = " " .. text:gsub("%./" .. script:gsub("%p", "%%%0"), script) .. " "
  return padded:find("[%s;&|(]" .. script:gsub("%p", "%%%0") .. "[%s;&|)]") ~= nil
end

-- The non-comment lines of a shell script, joined.
local function script_code(path)
  local text = assert(read_file(path), "cannot read " .. path)
  local code = {}
  for _, line in ipairs(lines_of(text)) do
    if not line:match("^%s*#") then code[#code + 1] = line end
  end
  return table.concat(code, "\n")
end

---------------------------------------------------------------------------
-- Dockerfile: instructions grouped by stage.

local function dockerfile()
  local text = assert(read_file("Dockerfile"), "no Dockerfile")
  local stages, stage = {}, nil
  local pending_line = nil
  for _, line in ipairs(lines_of(text)) do
    if pending_line or not (line:match("^%s*#") or line:match("^%s*$")) then
      if pending_line and line:match("^%s*#") then goto continue end
      local full = (pending_line or "") .. line
      if full:match("\\%s*$") then
        pending_line = full:gsub("\\%s*$", " ")
        goto continue
      end
      pending_line = nil
      local cmd, args = full:match("^%s*(%a+)%s*(.-)%s*$")
      cmd = cmd:upper()
      if cmd == "FROM" then
        local image, name = args:match("^(%S+)%s+[Aa][Ss]%s+(%S+)$")
        stage = { image = image or args:match("^(%S+)"), name = name, instructions = {} }
        stages[#stages + 1] = stage
      end
      assert(stage, "Dockerfile: " .. cmd .. " before the first FROM")
      stage.instructions[#stage.instructions + 1] = { cmd = cmd, args = args }
    end
    ::continue::
  end
  return stages
end

local function stage_named(stages, name)
  for _, s in ipairs(stages) do if s.name == name then return s end end
end

local function instructions(stage, cmd)
  local t = {}
  for _, i in ipairs(stage.instructions) do
    if i.cmd == cmd then t[#t + 1] = i.args end
  end
  return t
end

-- A stage and the stages it derives from, nearest first.
local function lineage(stages, stage)
  local chain = { stage }
  local parent = stage_named(stages, stage.image)
  while parent do
    chain[#chain + 1] = parent
    parent = stage_named(stages, parent.image)
  end
  return chain
end

-- The packages of every `apt-get install` in a stage's RUN lines.
local function apt_installs(stage)
  local pkgs = {}
  for _, run in ipairs(instructions(stage, "RUN")) do
    for part in (run .. "&&"):gmatch("(.-)&&") do
      local rest = part:match("apt%-get%s+install%s+(.*)$")
      if rest then
        for word in rest:gmatch("%S+") do
          if not word:match("^%-") then pkgs[#pkgs + 1] = word end
        end
      end
    end
  end
  return pkgs
end

---------------------------------------------------------------------------
-- scripts/deps: the packages each step installs, read from its arrays and
-- its case arms (`run) wanted=("${build_packages[@]}" ...)`).

local function deps_wanted(step)
  local text = script_code("scripts/deps")
  local arrays = {}
  for name, body in text:gmatch("([%w_]+)_packages=%((.-)%)") do
    local list = {}
    for word in body:gmatch("%S+") do list[#list + 1] = word end
    arrays[name] = list
  end
  for arms, body in text:gmatch("\n%s*([%w |]+)%)%s*wanted=%((.-)%)") do
    for arm in arms:gmatch("[%w]+") do
      if arm == step then
        local out = {}
        for name in body:gmatch("%${([%w_]+)_packages%[@%]}") do
          for _, p in ipairs(assert(arrays[name], "scripts/deps has no " .. name .. "_packages")) do
            out[#out + 1] = p
          end
        end
        return out
      end
    end
  end
  error("scripts/deps has no step " .. step)
end

---------------------------------------------------------------------------
-- docker-compose config output: the lines of one service, unindented by 4.

local function compose_service(config, name)
  local block, inside = {}, false
  for _, line in ipairs(lines_of(config)) do
    if line:match("^  %S") then
      inside = line == "  " .. name .. ":"
    elseif inside and line:match("^    ") then
      block[#block + 1] = line:sub(5)
    elseif inside and line:match("^%S") then
      inside = false
    end
  end
  if #block == 0 then return nil end
  local svc = { volumes = {} }
  local section
  for _, line in ipairs(block) do
    local item = line:match("^%s*%-%s+(.-)%s*$")
    local key, value = line:match("^(%S[^:]*):%s*(.-)$")
    if item then
      if section == "volumes" then svc.volumes[#svc.volumes + 1] = item end
    elseif key then
      section = key
      if value ~= "" then svc[key] = value end
    elseif section == "build" then
      local k, v = line:match("^%s+([%w_]+):%s*(.-)$")
      if k then svc["build." .. k] = v end
    end
  end
  return svc
end

---------------------------------------------------------------------------
-- README: the commands of the first fenced block after "Quick start".

local function quick_start()
  local text = read_file("README.md")
  if not text then return nil, "README.md does not exist yet (the lead writes it)" end
  local lines = lines_of(text)
  local start
  for i, line in ipairs(lines) do
    if line:lower():match("^#+%s+quick start%s*$") then start = i break end
  end
  if not start then return nil, "README.md has no 'Quick start' heading" end
  local cmds, fence = {}, false
  for i = start + 1, #lines do
    local line = lines[i]
    if line:match("^%s*```") or line:match("^%s*~~~") then
      if fence then return cmds end
      fence = true
    elseif fence and not line:match("^%s*$") and not line:match("^%s*#") then
      cmds[#cmds + 1] = normalize_command(line:gsub("^%s*%$%s+", ""))
    end
  end
  error("README.md: no closed fenced block after the Quick start heading")
end

---------------------------------------------------------------------------
-- Compose commands, as the README and docker-compose.yml's comments give
-- them: "docker compose up monitor", or "docker-compose up monitor" (Debian
-- 12's docker-compose package, Compose 1.29). A line may hold several
-- ("... # or: docker-compose build monitor").

local function compose_commands(lines)
  local list = {}
  for _, line in ipairs(lines) do
    for cmd in line:gmatch("docker[ %-]compose[^#`]*") do
      cmd = cmd:gsub("%s+$", ""):gsub("%s+", " ")
      if cmd:match("^docker[ %-]compose %S") then list[#list + 1] = cmd end
    end
  end
  return list
end

-- "docker-compose up x" -> "docker compose up x".
local function one_spelling(cmd) return (cmd:gsub("^docker%-compose ", "docker compose ")) end

-- The commands (one spelling) that `cmds` lacks in the other spelling.
local function single_spelled(cmds)
  local have, missing = {}, {}
  for _, c in ipairs(cmds) do have[c] = true end
  for _, c in ipairs(cmds) do
    local other = c:match("^docker%-compose ") and one_spelling(c)
      or c:gsub("^docker compose ", "docker-compose ")
    if not have[other] then missing[#missing + 1] = c end
  end
  return missing
end

-- The comment lines of docker-compose.yml.
local function compose_comments()
  local text = assert(read_file("docker-compose.yml"), "no docker-compose.yml")
  local t = {}
  for _, line in ipairs(lines_of(text)) do
    if line:match("^%s*#") then t[#t + 1] = line end
  end
  return t
end

-- The lines of the fenced blocks of one README section (## heading).
local function readme_section_code(heading)
  local text = read_file("README.md")
  if not text then return nil, "README.md does not exist yet (the lead writes it)" end
  local lines, code, inside, fence = lines_of(text), {}, false, false
  for _, line in ipairs(lines) do
    if line:match("^##%s") then
      inside = line:lower():match("^##%s+(.-)%s*$") == heading:lower()
    elseif inside and line:match("^%s*```") then
      fence = not fence
    elseif inside and fence then
      code[#code + 1] = line
    end
  end
  if #code == 0 then return nil, "README.md has no code under '## " .. heading .. "'" end
  return code
end

-- The modules the README's Lua examples require.
local function readme_requires()
  local text = assert(read_file("README.md"), "no README.md")
  local names, seen = {}, {}
  for block in text:gmatch("```lua\n(.-)```") do
    for name in block:gmatch("require%s*%(?%s*[\"']([%w_.%-]+)[\"']") do
      if not seen[name] then
        seen[name] = true
        names[#names + 1] = name
      end
    end
  end
  return names
end

---------------------------------------------------------------------------
-- Rockspec

local function rockspec()
  local env = {}
  local chunk = assert(loadfile(ROCKSPEC, "t", env))
  chunk()
  return env
end

-- "lua/moonwatch/config/convert.lua" -> "moonwatch.config.convert";
-- ".../init.lua" names its directory.
local function module_of(path)
  local name = assert(path:match("^lua/(.+)%.lua$"), "not under lua/: " .. path)
  name = name:gsub("/init$", ""):gsub("/", ".")
  return name
end

local function listing(cmd)
  local ok, out = sh(cmd)
  assert(ok, cmd .. " failed: " .. out)
  local t = {}
  for line in out:gmatch("[^\n]+") do t[#t + 1] = line end
  table.sort(t)
  return t
end

---------------------------------------------------------------------------

describe("packaging", function()
  describe("docker-compose.yml", function()
    local svc, stages, here

    setup(function()
      local ok, out = sh("docker-compose -f docker-compose.yml config")
      assert(ok, "docker-compose config rejects docker-compose.yml:\n" .. out)
      svc = compose_service(out, "monitor")
      stages = dockerfile()
      -- The project directory, as docker-compose prints it (./ made absolute).
      here = {}
      for _, cmd in ipairs({ "pwd", "pwd -P" }) do
        local _, dir = sh(cmd)
        here[#here + 1] = (dir:gsub("%s+$", ""))
      end
    end)

    it("is accepted by docker-compose config, with service monitor built from ./", function()
      assert.is_not_nil(svc, "no service 'monitor' in docker-compose.yml")
      local context = svc["build.context"] or svc.build
      assert.is_true(contains(here, context),
        "service monitor builds from " .. tostring(context) .. ", not ./")
    end)

    it("builds a Dockerfile stage that has the test tools, the checkout mounted", function()
      assert.is_not_nil(svc, "no service 'monitor' in docker-compose.yml")
      local target = svc["build.target"]
      local stage
      if target then stage = stage_named(stages, target) else stage = stages[#stages] end
      assert.is_not_nil(stage, "docker-compose.yml builds stage " .. tostring(target)
        .. ", which the Dockerfile does not have")
      local has_tools = false
      for _, s in ipairs(lineage(stages, stage)) do
        for _, run in ipairs(instructions(s, "RUN")) do
          if runs_script(run, "scripts/deps") and run:match("scripts/deps%s+test") then
            has_tools = true
          end
        end
      end
      assert.is_true(has_tools, "the service's stage never RUNs scripts/deps test: "
        .. "`docker compose run --rm monitor scripts/test` would need root and the network")
      local wd = assert(svc.working_dir, "service monitor has no working_dir")
      local mounted = false
      for _, v in ipairs(svc.volumes) do
        local host, dest = v:match("^([^:]+):([^:]+)")
        if dest == wd and contains(here, host) then mounted = true end
      end
      assert.is_true(mounted, "the checkout is not mounted at the working_dir " .. wd)
      -- The host's build trees have CMake caches for the host's path.
      assert.is_true(contains(svc.volumes, wd .. "/build"), "no volume over " .. wd .. "/build")
      assert.is_true(contains(svc.volumes, wd .. "/build-asan"),
        "no volume over " .. wd .. "/build-asan")
    end)
    it("publishes the endpoint and, in profile prometheus, a Prometheus that scrapes it",
      function()
      local ok, out = sh("docker-compose -f docker-compose.yml --profile prometheus config")
      assert(ok, "docker-compose config rejects the prometheus profile:\n" .. out)
      local prom = assert(compose_service(out, "prometheus"), "no service 'prometheus'")
      assert.is_not_nil(stage_named(stages, prom["build.target"]),
        "service prometheus builds stage " .. tostring(prom["build.target"])
        .. ", which the Dockerfile does not have")
      local listen = out:match("MOONWATCH_SERVER__LISTEN: '?\"?([^'\"\n]+)")
      assert.equals("0.0.0.0:9321", listen, "the monitor's endpoint does not listen in the "
        .. "container")
      local cfg = assert(read_file("deploy/prometheus.yml"))
      assert.truthy(cfg:find('"monitor:9321"', 1, true), "deploy/prometheus.yml does not "
        .. "scrape monitor:9321")
      local good, why = sh("promtool check config deploy/prometheus.yml")
      assert(good, "promtool rejects deploy/prometheus.yml (scripts/deps test installs "
        .. "promtool):\n" .. why)
    end)

    it("builds the image once: named, never pulled, rebuilt only on request", function()
      assert.is_not_nil(svc, "no service 'monitor' in docker-compose.yml")
      -- The name is how compose finds the image it built, at the next `up`.
      assert.is_not_nil(svc.image, "service monitor names no image")
      -- `build` rebuilds at every `up`; the default, when the image is
      -- missing, first asks a registry for a moonwatch:dev no registry has.
      assert.equals("never", svc.pull_policy,
        "service monitor: pull_policy should be never (build when missing, never pull)")
      local cmds = compose_commands(compose_comments())
      assert.is_true(contains(cmds, "docker compose build monitor")
        or contains(cmds, "docker compose up --build monitor"),
        "docker-compose.yml's comments do not say how to rebuild the image")
    end)

    it("gives each command in both spellings, and the README gives its up and run ones", function()
      local cmds = compose_commands(compose_comments())
      assert.is_true(#cmds > 0, "docker-compose.yml's comments give no command")
      assert.same({}, single_spelled(cmds),
        "docker-compose.yml: commands given in one spelling only")
      local code, why = readme_section_code("Running under compose")
      assert(code, why)
      local readme = compose_commands(code)
      assert.same({}, single_spelled(readme),
        "README.md (Running under compose): commands given in one spelling only")
      local documented = {}
      for _, c in ipairs(cmds) do documented[one_spelling(c)] = true end
      local shown = {}
      for _, c in ipairs(readme) do
        shown[one_spelling(c)] = true
        assert.is_true(documented[one_spelling(c)],
          "README.md gives `" .. c .. "`, which docker-compose.yml's comments do not")
      end
      for c in pairs(documented) do
        if c:match("^docker compose up ") or c:match("^docker compose run ") then
          assert.is_true(shown[c], "README.md (Running under compose) lacks `" .. c .. "`")
        end
      end
    end)
  end)

  describe("Dockerfile", function()
    local stages
    setup(function() stages = dockerfile() end)

    it("starts every stage FROM debian:bookworm(-slim) or an earlier stage", function()
      assert.is_true(#stages >= 2, "expected a build stage and a runtime stage")
      local seen = {}
      for _, s in ipairs(stages) do
        assert.is_truthy(seen[s.image] or s.image:match("^debian:bookworm%-slim$")
          or s.image:match("^debian:bookworm$"), "FROM " .. s.image)
        if s.name then seen[s.name] = true end
      end
      assert.equals("debian:bookworm-slim", stages[#stages].image)
    end)

    it("RUNs " .. BUILD_SCRIPT .. " in a build stage, not in the runtime one", function()
      local found
      for i, s in ipairs(stages) do
        for _, run in ipairs(instructions(s, "RUN")) do
          if runs_script(run, BUILD_SCRIPT) then found = i end
        end
      end
      assert.is_not_nil(found, "no stage RUNs " .. BUILD_SCRIPT)
      assert.is_true(found < #stages, BUILD_SCRIPT .. " runs in the runtime stage")
    end)

    it("ends with the daemon: runtime packages, non-root, entrypoint, monitors.lua", function()
      local rt = stages[#stages]
      local pkgs = apt_installs(rt)
      local runtime = { "libuv1", "libcurl4", "libc-ares2", "libpcre2-8-0", "libssl3",
                        "liblua5.4-0", "lua-cjson", "ca-certificates" }
      for _, p in ipairs(runtime) do
        assert.is_true(contains(pkgs, p), "the runtime stage does not install " .. p)
      end
      for _, p in ipairs(pkgs) do
        assert.is_falsy(p:match("%-dev$") or p == "gcc" or p == "cmake",
          "the runtime stage installs build package " .. p)
      end
      local users = instructions(rt, "USER")
      assert.equals("moonwatch", users[#users])
      assert.same({ "SIGTERM" }, instructions(rt, "STOPSIGNAL"))
      local entry = instructions(rt, "ENTRYPOINT")
      assert.equals(1, #entry)
      assert.matches('^%[%s*"[^"]*moonwatch"%s*%]$', entry[1])
      assert.same({ '["monitors.lua"]' }, instructions(rt, "CMD"))
      local wd = instructions(rt, "WORKDIR")
      assert.equals("/app", wd[#wd])
      local copied = false
      for _, c in ipairs(instructions(rt, "COPY")) do
        if c:match("^monitors%.lua%s+/app/") or c:match("^monitors%.lua%s+%./?$") then
          copied = true
        end
      end
      assert.is_true(copied, "the runtime stage does not COPY monitors.lua into /app")
      local lua_dir
      for _, e in ipairs(instructions(rt, "ENV")) do
        lua_dir = e:match("MOONWATCH_LUA_DIR[=%s]+(%S+)") or lua_dir
      end
      assert.equals("/opt/moonwatch/share/lua/5.4", lua_dir)
    end)

    it("installs, in the runtime stage, what the README's examples require (lua-cjson)", function()
      local pkgs = apt_installs(stages[#stages])
      assert.is_true(contains(pkgs, "lua-cjson"),
        "the runtime stage does not install lua-cjson (require(\"cjson\") in the README)")
      if not sh("command -v dpkg") then pending("no dpkg") end
      for _, name in ipairs(readme_requires()) do
        local file = package.searchpath(name, package.cpath)
          or package.searchpath(name, package.path)
        -- moonwatch's own, and the examples' (token_monitor), are not packages;
        -- a module installed nowhere here cannot be traced to one.
        if not name:match("^moonwatch") and file and file:match("^/usr/") then
          local found, owner = sh("dpkg -S " .. shell_quote(file))
          assert(found, "no Debian package owns " .. file .. " (require(\"" .. name .. "\")): "
            .. owner)
          local pkg = owner:match("^([^:%s]+)")
          assert.is_true(contains(pkgs, pkg), "the README's examples require(\"" .. name
            .. "\"), from " .. pkg .. ", which the runtime stage does not install")
        end
      end
    end)

    it("installs, in the runtime stage, the package of every library moonwatch links", function()
      local bin = os.getenv("MOONWATCH_BIN") or "build/moonwatch"
      local f = io.open(bin, "rb")
      if not f then pending("no " .. bin .. ": run scripts/build first") end
      f:close()
      if not sh("command -v objdump && command -v dpkg") then pending("no objdump or dpkg") end
      local ok, needed = sh("objdump -p " .. shell_quote(bin))
      assert(ok, needed)
      local _, ldd = sh("ldd " .. shell_quote(bin))
      local pkgs = apt_installs(stages[#stages])
      for lib in needed:gmatch("NEEDED%s+(%S+)") do
        -- The sanitizer build's runtimes are not part of the image.
        if not (lib:match("^libasan") or lib:match("^libubsan")) then
          local path = assert(ldd:match(lib:gsub("%p", "%%%0") .. " => (%S+)"), lib .. " not found")
          local found, owner = sh("dpkg -S " .. shell_quote(path))
          if not found then
            local other = path:match("^/usr(/.*)$") or ("/usr" .. path)
            found, owner = sh("dpkg -S " .. shell_quote(other))
          end
          assert(found, "no Debian package owns " .. path .. ": " .. owner)
          local pkg = owner:match("^([^:%s]+)")
          assert.is_truthy(pkg == "libc6" or contains(pkgs, pkg),
            "moonwatch links " .. lib .. " (package " .. pkg .. "), not installed at run time")
        end
      end
    end)

    it("installs, in the runtime stage, the Lua modules scripts/deps run installs", function()
      local pkgs = apt_installs(stages[#stages])
      for _, p in ipairs(deps_wanted("run")) do
        if p:match("^lua%-") then
          assert.is_true(contains(pkgs, p), "the runtime stage does not install " .. p)
        end
      end
    end)

    it("gets no host build tree in its context (.dockerignore)", function()
      local ignore = assert(read_file(".dockerignore"), "no .dockerignore")
      local entries = {}
      for _, line in ipairs(lines_of(ignore)) do
        entries[#entries + 1] = line:gsub("^%s*/?", ""):gsub("/?%s*$", "")
      end
      for _, dir in ipairs({ "build", "build-*", ".git" }) do
        assert.is_true(contains(entries, dir), ".dockerignore does not list " .. dir)
      end
    end)
  end)

  describe("scripts/deps", function()
    it("installs the build packages of every library CMake looks for", function()
      local build = deps_wanted("build")
      for _, p in ipairs({ "liblua5.4-dev", "libuv1-dev", "libcurl4-openssl-dev",
                           "libc-ares-dev", "libpcre2-dev", "libssl-dev" }) do
        assert.is_true(contains(build, p), "scripts/deps build does not install " .. p)
      end
    end)

    it("installs for run what the daemon loads (lua-cjson), and for test all of it", function()
      local run, test = deps_wanted("run"), deps_wanted("test")
      assert.is_true(contains(run, "lua-cjson"), "scripts/deps run does not install lua-cjson")
      for _, p in ipairs(run) do
        assert.is_true(contains(test, p), "scripts/deps test does not install " .. p)
      end
      assert.is_true(runs_script(script_code("scripts/run"), "scripts/deps"),
        "scripts/run does not run scripts/deps")
    end)
  end)

  describe("README Quick start", function()
    local cmds, why
    setup(function() cmds, why = quick_start() end)

    it("has exactly two commands: run, then test", function()
      if not cmds then pending(why) end
      assert.equals(2, #cmds, "Quick start commands: " .. table.concat(cmds, " | "))
      assert.matches("^scripts/run%f[%s%z]", cmds[1])
      assert.matches("^scripts/test%f[%s%z]", cmds[2])
    end)

    it("runs a script that builds with " .. BUILD_SCRIPT .. ", as the Dockerfile does", function()
      if not cmds then pending(why) end
      local script = assert(cmds[1]:match("^(%S+)"))
      assert.is_true(runs_script(script_code(script), BUILD_SCRIPT),
        script .. " does not run " .. BUILD_SCRIPT)
      local runs = false
      for _, s in ipairs(dockerfile()) do
        for _, run in ipairs(instructions(s, "RUN")) do
          runs = runs or runs_script(run, BUILD_SCRIPT)
        end
      end
      assert.is_true(runs, "the Dockerfile does not RUN " .. BUILD_SCRIPT)
    end)

    it("is what CI runs: .ci/run runs the README's test command", function()
      if not cmds then pending(why) end
      local found = false
      for _, line in ipairs(lines_of(script_code(".ci/run"))) do
        if normalize_command(line) == cmds[2] then found = true end
      end
      assert.is_true(found, ".ci/run does not run `" .. cmds[2] .. "`")
    end)
  end)

  describe(ROCKSPEC, function()
    local spec
    setup(function() spec = rockspec() end)

    it("lists every Lua module under lua/moonwatch, each under its own name", function()
      local modules = spec.build.modules
      local files = listing("find lua/moonwatch -type f -name '*.lua'")
      assert.is_true(#files > 0)
      for _, file in ipairs(files) do
        local name = module_of(file)
        assert.equals(file, modules[name], "the rockspec's modules lack " .. name .. " = " .. file)
      end
      for name, src in pairs(modules) do
        if type(src) == "string" then
          assert.is_true(contains(files, src), "the rockspec lists " .. src .. ", which is gone")
          assert.equals(module_of(src), name)
        end
      end
    end)

    it("builds moonwatch.core from every c/*.c but main.c, at the project version", function()
      local core = assert(spec.build.modules["moonwatch.core"], "no moonwatch.core module")
      local want = {}
      for _, f in ipairs(listing("ls c/*.c")) do
        if f ~= "c/main.c" then want[#want + 1] = f end
      end
      assert.same(want, sorted(core.sources))
      assert.is_true(contains(core.defines, 'MOONWATCH_VERSION="' .. project_version() .. '"'),
        "moonwatch.core is not built with MOONWATCH_VERSION=\"" .. project_version() .. "\"")
      assert.is_true(contains(core.defines, "_GNU_SOURCE"))
      for _, lib in ipairs({ "uv", "curl", "cares", "pcre2-8", "ssl", "crypto", "m" }) do
        assert.is_true(contains(core.libraries, lib), "moonwatch.core does not link " .. lib)
      end
    end)

    it("installs with luarocks make, and stock lua5.4 loads it from the tree", function()
      local tmp = tmpdir()
      finally(function() rmtree(tmp) end)
      -- Built from a copy: luarocks' builtin build leaves c/*.o and
      -- moonwatch/core.so in the directory it runs in.
      local src, tree = tmp .. "/src", tmp .. "/tree"
      local ok, out = sh(string.format("mkdir %s && cp -R %s c lua %s", shell_quote(src),
        ROCKSPEC, shell_quote(src)))
      assert(ok, out)
      ok, out = sh(string.format("cd %s && luarocks --lua-version=5.4 make --deps-mode=none"
        .. " --tree=%s %s", shell_quote(src), shell_quote(tree), ROCKSPEC))
      assert(ok, "luarocks make failed:\n" .. out)

      local modules = {}
      for name in pairs(spec.build.modules) do modules[#modules + 1] = name end
      table.sort(modules)
      local share, lib = tree .. "/share/lua/5.4", tree .. "/lib/lua/5.4"
      local lpath = share .. "/?.lua;" .. share .. "/?/init.lua"
      local cpath = lib .. "/?.so"
      local probe = [[
        local tree = ...
        for i = 2, select("#", ...) do
          local name = select(i, ...)
          require(name)
          local file = package.searchpath(name, package.path)
            or package.searchpath(name, package.cpath)
          assert(file and file:sub(1, #tree) == tree, name .. " loaded from " .. tostring(file))
        end
        io.write(require("moonwatch.core").version, "\n")
      ]]
      local probe_file = tmp .. "/probe.lua"
      local f = assert(io.open(probe_file, "w"))
      f:write(probe)
      f:close()
      local env = string.format("LUA_PATH=%s LUA_PATH_5_4=%s LUA_CPATH=%s LUA_CPATH_5_4=%s",
        shell_quote(lpath), shell_quote(lpath), shell_quote(cpath), shell_quote(cpath))
      local quoted = {}
      for i, m in ipairs(modules) do quoted[i] = shell_quote(m) end
      ok, out = sh(string.format("%s lua5.4 %s %s %s", env, shell_quote(probe_file),
        shell_quote(tree), table.concat(quoted, " ")))
      assert(ok, "stock lua5.4 cannot load the installed rock:\n" .. out)
      assert.equals(project_version() .. "\n", out)
    end)
  end)
end)
