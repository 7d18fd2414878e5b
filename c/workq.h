/* L1: a serial work queue on libuv's thread pool.
 *
 * Jobs pushed onto one queue run one at a time on the pool, in the order they
 * were pushed: a job's work starts only once the previous job's work has
 * returned (the next one may already run while the previous done runs). So a resource that must not
 * be used from two threads at once (an SQLite connection) can still be used from the pool.
 * Different queues run in parallel. A queued or running job keeps the loop alive; none can be
 * withdrawn, so its memory belongs to the queue until its done runs. */
#ifndef MW_WORKQ_H
#define MW_WORKQ_H

#include <uv.h>

#include "list.h"

typedef struct mw_workq_job mw_workq_job;

/* work runs on a pool thread, done on the loop afterwards; done may free the
 * job, push more jobs, and free the queue once workq_idle says so. */
typedef void (*mw_workq_fn)(mw_workq_job *job);

struct mw_workq_job {
  uv_work_t req;
  mw_list link;
  struct mw_workq *queue;
  mw_workq_fn work, done;
};

typedef struct mw_workq {
  uv_loop_t *uv;
  mw_list pending;       /* jobs waiting for the running one */
  mw_workq_job *running; /* on the pool, or its done running */
} mw_workq;

void workq_init(mw_workq *q, uv_loop_t *uv);
/* Appends job (embedded in its owner) to q; it starts at once if q is idle. */
void workq_push(mw_workq *q, mw_workq_job *job, mw_workq_fn work, mw_workq_fn done);
/* Whether no job is queued or running. */
int workq_idle(const mw_workq *q);

#endif
