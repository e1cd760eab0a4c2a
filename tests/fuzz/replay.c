/*
 * Replays fuzz inputs through a fuzz target without libFuzzer, so every normal build runs the
 * seed corpora as a test: each argument is a file or a directory of files (read in name order);
 * each file is one TAP case "ok N - path". A crash (sanitizer report, failed scrm_assert) stops
 * the run and meson counts the test as failed.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional: a target that keeps threads for the life of the process (fuzz_server's daemon)
 * stops and joins them here, after the last input, so that a sanitizer finds none left. */
void scrm_fuzz_replay_done(void) __attribute__((weak));

#define REPLAY_MAX_INPUT (1u << 20)

static unsigned cases;

/* Run one file; returns 0, or -1 when it cannot be read. */
static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t *buf = malloc(REPLAY_MAX_INPUT);
    size_t n = buf ? fread(buf, 1, REPLAY_MAX_INPUT, f) : 0;
    int bad = !buf || ferror(f);
    fclose(f);
    if (!bad)
        LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    printf("%s %u - %s (%zu bytes)\n", bad ? "not ok" : "ok", ++cases, path, n);
    fflush(stdout);
    return bad ? -1 : 0;
}

static int run_dir(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort), rc = 0;
    if (n < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        int len = snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (len > 0 && (size_t)len < sizeof(path) && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            rc |= run_file(path);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0)
            rc = -1;
        else
            rc |= S_ISDIR(st.st_mode) ? run_dir(argv[i]) : run_file(argv[i]);
    }
    if (scrm_fuzz_replay_done)
        scrm_fuzz_replay_done();
    printf("1..%u\n", cases);
    return rc || cases == 0 ? 1 : 0;
}
