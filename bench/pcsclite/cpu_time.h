/*
 * CPU time of the benchmark client and of the daemon it talks to (bench/pcsclite): unlike
 * calls/s, CPU per call hardly depends on what else the machine runs. Header-only, shared by
 * pcsc_client.c and raw_client.c.
 */
#ifndef SCRM_BENCH_PCSCLITE_CPU_TIME_H
#define SCRM_BENCH_PCSCLITE_CPU_TIME_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* CPU time of this process, in seconds. */
static inline double cpu_self(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* CPU time of the daemon whose pid is in SCRM_BENCH_DAEMON_PID (the sum of its threads' run time
 * from /proc/PID/task/TID/schedstat, in seconds), or -1 if not given or not readable. */
static inline double cpu_daemon(void)
{
    const char *pid = getenv("SCRM_BENCH_DAEMON_PID");
    char path[128];
    double sum = 0;
    struct dirent *e;
    DIR *d;

    if (!pid)
        return -1;
    snprintf(path, sizeof path, "/proc/%s/task", pid);
    d = opendir(path);
    if (!d)
        return -1;
    while ((e = readdir(d))) {
        unsigned long long ns = 0;
        FILE *f;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%s/task/%.32s/schedstat", pid, e->d_name);
        f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%llu", &ns) == 1)
                sum += (double)ns / 1e9;
            fclose(f);
        }
    }
    closedir(d);
    return sum;
}

#endif
