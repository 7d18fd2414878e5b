/* L0: the process's own figures, read the way Prometheus's client libraries
 * read them, so dashboards made for them show moonwatch too. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "procstat.h"

/* The boot time (btime of /proc/stat), which the start time counts from. */
static double boot_time(void) {
  FILE *f = fopen("/proc/stat", "r");
  if (!f)
    return -1;
  char line[256];
  double t = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "btime ", 6) == 0) {
      t = strtod(line + 6, NULL);
      break;
    }
  fclose(f);
  return t;
}

/* vsize, rss and starttime from /proc/self/stat (proc(5): fields 23, 24,
 * 22). The command name, field 2, may hold spaces and parentheses: the
 * fields are counted from its last ')'. */
static int read_stat(mw_procstat *p) {
  FILE *f = fopen("/proc/self/stat", "r");
  if (!f)
    return 0;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *s = strrchr(buf, ')');
  if (!s)
    return 0;
  s++;
  double field[25] = {0};
  /* field 3 (the state letter) comes first */
  for (int i = 3; i <= 24 && *s; i++) {
    while (*s == ' ')
      s++;
    if (i > 3)
      field[i] = strtod(s, NULL);
    while (*s && *s != ' ')
      s++;
  }
  long page = sysconf(_SC_PAGESIZE);
  long ticks = sysconf(_SC_CLK_TCK);
  p->virtual_bytes = field[23];
  p->resident_bytes = page > 0 ? field[24] * (double)page : -1;
  double boot = boot_time();
  p->start_time = boot >= 0 && ticks > 0 ? boot + field[22] / (double)ticks : -1;
  return 1;
}

static double open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return -1;
  int own = dirfd(d);
  double n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.' && atoi(e->d_name) != own)
      n++;
  closedir(d);
  return n;
}

int procstat_read(mw_procstat *p) {
  int any = 0;
  p->cpu_seconds = p->resident_bytes = p->virtual_bytes = -1;
  p->open_fds = p->max_fds = p->start_time = -1;
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    p->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    any = 1;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    p->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur;
    any = 1;
  }
  any |= read_stat(p);
  p->open_fds = open_fds();
  return any || p->open_fds >= 0;
}
