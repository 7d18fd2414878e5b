/* L4: core.sleep, a task waiting on a one-shot timer. */
#include <lauxlib.h>
#include <stdlib.h>

#include "sleep.h"
#include "task.h"

typedef struct {
  uv_timer_t timer;
  mw_task *task; /* NULL once cancelled */
} mw_sleep;

static void sleep_free(uv_handle_t *handle) {
  free(handle->data);
}

static void sleep_fire(uv_timer_t *timer) {
  mw_sleep *s = timer->data;
  mw_task *task = s->task;
  s->task = NULL;
  uv_close((uv_handle_t *)timer, sleep_free);
  if (task)
    task_resume(task, 0);
}

static void sleep_cancel(void *data) {
  mw_sleep *s = data;
  s->task = NULL;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, sleep_free);
}

static lua_Number sleep_seconds(lua_State *L, int idx, const char *what) {
  lua_Number s = luaL_checknumber(L, idx);
  if (!(s >= 0) || s > 1e9)
    luaL_error(L, "%s: seconds must be a number from 0 to 1e9, got %f", what, (double)s);
  return s;
}

/* libuv counts whole milliseconds from the loop's cached time, the start of
 * the current millisecond at best, so a plain timeout can end up to 1 ms
 * early. Aim at the first loop millisecond at or after now + seconds. */
static uint64_t sleep_timeout_ms(uv_loop_t *loop, lua_Number seconds) {
  uv_update_time(loop);
  uint64_t due_ms = (uv_hrtime() + (uint64_t)(seconds * 1e9) + 999999) / 1000000;
  uint64_t now_ms = uv_now(loop);
  /* libuv 1.44 spins on a 0 ms timer started from a timer callback. */
  return due_ms > now_ms ? due_ms - now_ms : 1;
}

/* core.sleep(seconds) */
static int l_sleep(lua_State *L) {
  lua_Number seconds = sleep_seconds(L, 1, "core.sleep");
  mw_task *task = task_check_current(L, "core.sleep");
  mw_sleep *s = malloc(sizeof *s);
  if (!s)
    return luaL_error(L, "core.sleep: out of memory");
  uv_timer_init(&task->loop->uv, &s->timer);
  s->timer.data = s;
  s->task = task;
  /* From the current time, not the loop's cached one: a sleep must not end
   * early because the task computed before it. */
  uv_timer_start(&s->timer, sleep_fire, sleep_timeout_ms(&task->loop->uv, seconds), 0);
  task_wait(task, sleep_cancel, s);
  return lua_yield(L, 0);
}

void sleep_register(lua_State *L) {
  lua_pushcfunction(L, l_sleep);
  lua_setfield(L, -2, "sleep");
}
