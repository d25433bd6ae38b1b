-- luacheck settings for Berth's nginx Lua modules (src/nginx/lua).
-- ngx_lua: LuaJIT plus the globals lua-nginx-module defines (ngx, ndk).
std = "ngx_lua"
max_line_length = 120
