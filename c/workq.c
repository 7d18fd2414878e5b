/* L1: a serial work queue on libuv's thread pool (see workq.h). */
#include "workq.h"

static void workq_start(mw_workq *q);

static void job_work(uv_work_t *req) {
  mw_workq_job *job = req->data;
  job->work(job);
}

static void job_after(uv_work_t *req, int status) {
  (void)status; /* jobs are never cancelled with uv_cancel */
  mw_workq_job *job = req->data;
  mw_workq *q = job->queue;
  q->running = NULL;
  /* done may free q's owner: q is not touched after it. */
  workq_start(q);
  job->done(job);
}

static void workq_start(mw_workq *q) {
  mw_list *node = list_first(&q->pending);
  if (!node)
    return;
  list_remove(node);
  mw_workq_job *job = list_entry(node, mw_workq_job, link);
  q->running = job;
  job->req.data = job;
  uv_queue_work(q->uv, &job->req, job_work, job_after);
}

void workq_init(mw_workq *q, uv_loop_t *uv) {
  q->uv = uv;
  list_init(&q->pending);
  q->running = NULL;
}

void workq_push(mw_workq *q, mw_workq_job *job, mw_workq_fn work, mw_workq_fn done) {
  job->queue = q;
  job->work = work;
  job->done = done;
  list_push_back(&q->pending, &job->link);
  if (!q->running)
    workq_start(q);
}

int workq_idle(const mw_workq *q) {
  return !q->running && list_empty(&q->pending);
}
