/* L0: reads a DNS answer message into a Lua table.
 *
 * c-ares builds the query and carries it (UDP, TCP when the answer is
 * truncated), and expands names here (ares_expand_name, compression
 * included), but the ares_parse_*_reply functions of c-ares 1.18 give no TTL
 * but for A and AAAA, have no CNAME reader and skip the rcode; the fixed
 * fields around the names are read here, with every length checked. */
#include <ares.h>
#include <arpa/inet.h>
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dns_answer.h"

static const struct {
  const char *name;
  int code;
} types[] = {{"A", 1},    {"NS", 2},    {"CNAME", 5}, {"SOA", 6},   {"MX", 15},
             {"TXT", 16}, {"AAAA", 28}, {"SRV", 33},  {"CAA", 257}, {NULL, 0}};

static const char *const rcodes[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                     "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
                                     "NXRRSET", "NOTAUTH", "NOTZONE"};

int dns_answer_type(const char *name) {
  for (int i = 0; types[i].name; i++)
    if (strcasecmp(name, types[i].name) == 0)
      return types[i].code;
  return 0;
}

static const char *type_name(int code) {
  for (int i = 0; types[i].name; i++)
    if (types[i].code == code)
      return types[i].name;
  return NULL;
}

const char *dns_answer_rcode_name(int rcode, char *buf, size_t cap) {
  if (rcode >= 0 && rcode < (int)(sizeof rcodes / sizeof *rcodes))
    return rcodes[rcode];
  snprintf(buf, cap, "RCODE%d", rcode);
  return buf;
}

typedef struct {
  const unsigned char *abuf;
  int alen;
  const char *error;
} reader;

static unsigned u16(const unsigned char *p) {
  return (unsigned)p[0] << 8 | p[1];
}

static unsigned long u32(const unsigned char *p) {
  return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
}

/* Pushes the name at p (within end) and returns the bytes it took there, or
 * -1. */
static long push_name(lua_State *L, reader *rd, const unsigned char *p, const unsigned char *end) {
  char *name = NULL;
  long len = 0;
  if (p >= end || ares_expand_name(p, rd->abuf, rd->alen, &name, &len) != ARES_SUCCESS ||
      p + len > end) {
    if (name)
      ares_free_string(name);
    rd->error = "a bad name";
    return -1;
  }
  lua_pushstring(L, name);
  ares_free_string(name);
  return len;
}

static void set_int(lua_State *L, const char *key, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, key);
}

/* Sets field key from the name at p; returns its length or -1. */
static long set_name(lua_State *L, reader *rd, const char *key, const unsigned char *p,
                     const unsigned char *end) {
  long n = push_name(L, rd, p, end);
  if (n >= 0)
    lua_setfield(L, -2, key);
  return n;
}

/* Fills the record table on top from its rdata and sets its value, the
 * rdata as text (dig's presentation, without trailing dots), in data. */
static int read_rdata(lua_State *L, reader *rd, int type, const unsigned char *p,
                      const unsigned char *end) {
  size_t len = (size_t)(end - p);
  char text[INET6_ADDRSTRLEN];
  long n;
  switch (type) {
  case 1:
  case 28:
    if (len != (type == 1 ? 4u : 16u) ||
        !inet_ntop(type == 1 ? AF_INET : AF_INET6, p, text, sizeof text)) {
      rd->error = "a bad address";
      return -1;
    }
    lua_pushstring(L, text);
    lua_setfield(L, -2, "address");
    lua_pushstring(L, text);
    break;
  case 2:
  case 5:
    if (set_name(L, rd, "target", p, end) < 0)
      return -1;
    lua_getfield(L, -1, "target");
    break;
  case 15:
    if (len < 3 || set_name(L, rd, "exchange", p + 2, end) < 0)
      return -1;
    set_int(L, "preference", u16(p));
    lua_pushfstring(L, "%d ", (int)u16(p));
    lua_getfield(L, -2, "exchange");
    lua_concat(L, 2);
    break;
  case 16: {
    lua_newtable(L); /* the character-strings, in order */
    int i = 0;
    for (const unsigned char *q = p; q < end; q += 1 + *q) {
      if (q + 1 + *q > end) {
        lua_pop(L, 1);
        rd->error = "a bad TXT string";
        return -1;
      }
      lua_pushlstring(L, (const char *)q + 1, *q);
      lua_rawseti(L, -2, ++i);
    }
    lua_setfield(L, -2, "strings");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (const unsigned char *q = p; q < end; q += 1 + *q)
      luaL_addlstring(&b, (const char *)q + 1, *q);
    luaL_pushresult(&b);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "text");
    break;
  }
  case 6: {
    long m = set_name(L, rd, "mname", p, end);
    if (m < 0 || (n = set_name(L, rd, "rname", p + m, end)) < 0)
      return -1;
    const unsigned char *f = p + m + n;
    if (end - f != 20) {
      rd->error = "a bad SOA record";
      return -1;
    }
    static const char *const keys[] = {"serial", "refresh", "retry", "expire", "minimum"};
    for (int i = 0; i < 5; i++)
      set_int(L, keys[i], (lua_Integer)u32(f + 4 * i));
    lua_getfield(L, -1, "mname");
    lua_getfield(L, -2, "rname");
    lua_pushfstring(L, " %s %I %I %I %I %I", lua_tostring(L, -1), (lua_Integer)u32(f),
                    (lua_Integer)u32(f + 4), (lua_Integer)u32(f + 8), (lua_Integer)u32(f + 12),
                    (lua_Integer)u32(f + 16));
    lua_remove(L, -2);
    lua_concat(L, 2);
    break;
  }
  case 33:
    if (len < 7 || set_name(L, rd, "target", p + 6, end) < 0)
      return -1;
    set_int(L, "priority", u16(p));
    set_int(L, "weight", u16(p + 2));
    set_int(L, "port", u16(p + 4));
    lua_getfield(L, -1, "target");
    lua_pushfstring(L, "%d %d %d %s", (int)u16(p), (int)u16(p + 2), (int)u16(p + 4),
                    lua_tostring(L, -1));
    lua_remove(L, -2);
    break;
  case 257:
    if (len < 2 || p[1] == 0 || (size_t)p[1] + 2 > len) {
      rd->error = "a bad CAA record";
      return -1;
    }
    set_int(L, "flags", p[0]);
    lua_pushlstring(L, (const char *)p + 2, p[1]);
    lua_setfield(L, -2, "tag");
    lua_pushlstring(L, (const char *)p + 2 + p[1], len - 2 - p[1]);
    lua_setfield(L, -2, "value");
    lua_getfield(L, -1, "tag");
    lua_getfield(L, -2, "value");
    lua_pushfstring(L, "%d %s \"%s\"", (int)p[0], lua_tostring(L, -2), lua_tostring(L, -1));
    lua_replace(L, -3);
    lua_pop(L, 1);
    break;
  default:
    return 1; /* not a type read here */
  }
  lua_setfield(L, -2, "data");
  return 0;
}

int dns_answer_push(lua_State *L, const unsigned char *abuf, int alen, int qtype,
                    const char **error) {
  reader rd = {abuf, alen, NULL};
  const unsigned char *p = abuf + 12, *end = abuf + alen;
  if (alen < 12) {
    *error = "malformed DNS answer: shorter than its header";
    return -1;
  }
  lua_checkstack(L, 12);
  int top = lua_gettop(L);
  unsigned flags = u16(abuf + 2), qd = u16(abuf + 4), an = u16(abuf + 6);
  char buf[16];
  lua_createtable(L, 0, 6);
  lua_pushstring(L, dns_answer_rcode_name((int)(flags & 0xF), buf, sizeof buf));
  lua_setfield(L, -2, "rcode");
  lua_pushboolean(L, (flags & 0x0400) != 0);
  lua_setfield(L, -2, "authoritative");
  lua_pushboolean(L, (flags & 0x0200) != 0);
  lua_setfield(L, -2, "truncated");
  lua_newtable(L); /* answers */
  lua_newtable(L); /* cnames */
  int n_answers = 0, n_cnames = 0;
  for (unsigned i = 0; i < qd && !rd.error; i++) {
    long n = push_name(L, &rd, p, end);
    if (n < 0)
      break;
    lua_pop(L, 1);
    p += n + 4;
    if (p > end)
      rd.error = "a truncated question";
  }
  for (unsigned i = 0; i < an && !rd.error; i++) {
    lua_createtable(L, 0, 6);
    long n = set_name(L, &rd, "name", p, end);
    if (n < 0)
      break;
    p += n;
    if (end - p < 10) {
      rd.error = "a truncated record";
      break;
    }
    int type = (int)u16(p);
    unsigned long ttl = u32(p + 4);
    unsigned rdlen = u16(p + 8);
    p += 10;
    if ((size_t)(end - p) < rdlen) {
      rd.error = "a record longer than the message";
      break;
    }
    const char *tname = type_name(type);
    int keep = tname && (type == qtype || type == 5);
    if (keep) {
      lua_pushstring(L, tname);
      lua_setfield(L, -2, "type");
      /* RFC 2181 8: a TTL with the top bit set counts as 0 */
      set_int(L, "ttl", ttl > 0x7FFFFFFFul ? 0 : (lua_Integer)ttl);
      int rc = read_rdata(L, &rd, type, p, p + rdlen);
      if (rc < 0)
        break;
    }
    p += rdlen;
    if (keep && type == qtype)
      lua_rawseti(L, top + 2, ++n_answers);
    else if (keep)
      lua_rawseti(L, top + 3, ++n_cnames);
    else
      lua_pop(L, 1);
  }
  if (rd.error) {
    lua_settop(L, top);
    *error = rd.error;
    return -1;
  }
  lua_setfield(L, top + 1, "cnames");
  lua_setfield(L, top + 1, "answers");
  return 0;
}
