/* L0: the process's own figures, as Prometheus's process collector reads
 * them (Linux: /proc/self, getrusage, getrlimit). */
#ifndef MW_PROCSTAT_H
#define MW_PROCSTAT_H

typedef struct {
  double cpu_seconds;    /* user and system */
  double resident_bytes; /* resident set */
  double virtual_bytes;  /* address space */
  double open_fds;
  double max_fds;    /* the soft limit */
  double start_time; /* Unix time */
} mw_procstat;

/* Fills p; a figure that cannot be read is -1. Returns 0 when none could. */
int procstat_read(mw_procstat *p);

#endif
