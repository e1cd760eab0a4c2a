/*
 * reader.conf.d parser (format in readerconf.h). The text is cut into lines, each line into at
 * most three tokens (a key, its value, and anything extra, which is an error); the keys of one
 * entry accumulate in `struct pending` until the entry closes. A mistake marks the pending entry
 * bad (reported once, with the line of the mistake); a bad entry is dropped when it closes, so
 * the parser resynchronises on the next entry without any special case.
 */
#include "sources/readerconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

#define TOKEN_MAX 4096u /* longest value accepted */

enum key { K_FRIENDLYNAME, K_DEVICENAME, K_LIBPATH, K_CHANNELID, K_COUNT };
static const char *const key_names[K_COUNT] = {"FRIENDLYNAME", "DEVICENAME", "LIBPATH",
                                               "CHANNELID"};

/* The entry being read. */
struct pending {
    char *val[K_COUNT];
    unsigned first_line; /* line of its first key, 0 while empty */
    bool bad;            /* a mistake was reported; dropped when it closes */
};

struct parser {
    struct readerconf *conf;
    const char *file;
    unsigned flags;
    readerconf_error_fn err;
    void *user;
    struct pending p;
    bool oom;
    int added;
};

static void report(struct parser *ps, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(struct parser *ps, unsigned line, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (ps->err)
        ps->err(ps->user, ps->file, line, why);
    else
        log_error(core, "%s:%u: %s; reader entry refused", ps->file, line, why);
}

/* Mark the pending entry bad with a reason (only the first reason is reported). */
static void fail(struct parser *ps, unsigned line, const char *why)
{
    if (!ps->p.first_line)
        ps->p.first_line = line;
    if (!ps->p.bad) {
        ps->p.bad = true;
        report(ps, line, "%s", why);
    }
}

static void pending_clear(struct pending *p)
{
    for (int k = 0; k < K_COUNT; k++)
        free(p->val[k]);
    memset(p, 0, sizeof *p);
}

/* Append the pending entry to the result (it is complete and checked). */
static void append(struct parser *ps)
{
    struct readerconf *c = ps->conf;
    struct readerconf_entry *grown = realloc(c->v, (c->n + 1) * sizeof(*grown));
    char *file = strdup(ps->file);
    if (!grown || !file) {
        free(file);
        if (grown)
            c->v = grown;
        ps->oom = true;
        return;
    }
    c->v = grown;
    struct readerconf_entry *e = &c->v[c->n++];
    memset(e, 0, sizeof *e);
    e->friendly_name = ps->p.val[K_FRIENDLYNAME];
    e->device_name = ps->p.val[K_DEVICENAME];
    e->lib_path = ps->p.val[K_LIBPATH];
    if (ps->p.val[K_CHANNELID]) {
        e->has_channel = true;
        e->channel_id = (uint32_t)strtoul(ps->p.val[K_CHANNELID], NULL, 0); /* checked */
        free(ps->p.val[K_CHANNELID]);
    }
    e->file = file;
    e->line = ps->p.first_line;
    memset(&ps->p, 0, sizeof ps->p); /* the strings now belong to the entry */
    ps->added++;
}

/* The pending entry ends: keep it if it is complete and had no mistake. */
static void close_entry(struct parser *ps)
{
    struct pending *p = &ps->p;
    if (!p->first_line) {
        pending_clear(p);
        return;
    }
    if (!p->bad) {
        const char *missing = NULL;
        if (!p->val[K_FRIENDLYNAME])
            missing = "FRIENDLYNAME";
        else if (!p->val[K_LIBPATH])
            missing = "LIBPATH";
        else if (!p->val[K_DEVICENAME] && !p->val[K_CHANNELID])
            missing = "DEVICENAME or CHANNELID";
        if (missing) {
            report(ps, p->first_line, "incomplete reader entry: no %s", missing);
            p->bad = true;
        }
    }
    if (p->bad) {
        ps->conf->refused++;
        pending_clear(p);
        return;
    }
    append(ps);
    if (ps->oom)
        pending_clear(p);
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F)
            return false;
    return true;
}

/* Check one value; NULL if fine, else why (in buf). */
static const char *check_value(const struct parser *ps, enum key k, const char *v, char *buf,
                               size_t cap)
{
    struct stat st;
    if (!*v)
        return "empty value";
    if (!printable(v))
        return "control character in the value";
    switch (k) {
    case K_FRIENDLYNAME:
        if (strlen(v) > READERCONF_NAME_MAX) {
            snprintf(buf, cap, "FRIENDLYNAME longer than %u characters", READERCONF_NAME_MAX);
            return buf;
        }
        return NULL;
    case K_LIBPATH:
        if (v[0] != '/')
            return "LIBPATH is not an absolute path";
        if (!(ps->flags & READERCONF_NO_FS_CHECKS)) {
            if (stat(v, &st) != 0) {
                snprintf(buf, cap, "library %s: %s", v, strerror(errno));
                return buf;
            }
            if (!S_ISREG(st.st_mode)) {
                snprintf(buf, cap, "library %s is not a regular file", v);
                return buf;
            }
        }
        return NULL;
    case K_DEVICENAME:
        /* A name without ':' is a file (a serial port); with one the driver interprets it. */
        if (!strchr(v, ':') && !(ps->flags & READERCONF_NO_FS_CHECKS) && stat(v, &st) != 0) {
            snprintf(buf, cap, "device %s: %s (use DEVICENAME /dev/null if the driver ignores it)",
                     v, strerror(errno));
            return buf;
        }
        return NULL;
    case K_CHANNELID: {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 0);
        if (v[0] == '-' || errno || *end || n > UINT32_MAX) {
            snprintf(buf, cap, "CHANNELID '%s' is not a number up to 0xFFFFFFFF", v);
            return buf;
        }
        return NULL;
    }
    default: return "unknown key";
    }
}

static int find_key(const char *key)
{
    int k = 0;
    while (k < K_COUNT && strcmp(key, key_names[k]) != 0)
        k++;
    return k;
}

/* A known key appears on `line`: FRIENDLYNAME starts a new entry; any other key joins the
 * pending one. Returns false (reported) for a key the pending entry already has. */
static bool begin_key(struct parser *ps, int k, unsigned line)
{
    if (k == K_FRIENDLYNAME)
        close_entry(ps);
    if (!ps->p.first_line)
        ps->p.first_line = line;
    if (ps->p.val[k]) {
        char why[64];
        snprintf(why, sizeof why, "%s given twice in one entry", key_names[k]);
        fail(ps, line, why);
        return false;
    }
    return true;
}

/* A `KEY value` pair read on `line` (value malloc'd, taken). */
static void take_pair(struct parser *ps, unsigned line, const char *key, char *value)
{
    int k = find_key(key);
    if (k == K_COUNT) {
        char why[128];
        snprintf(why, sizeof why, "unknown key '%.40s'", key);
        fail(ps, line, why);
        free(value);
        return;
    }
    if (!begin_key(ps, k, line) || ps->oom) {
        free(value);
        return;
    }
    char buf[512];
    const char *why = check_value(ps, (enum key)k, value, buf, sizeof buf);
    if (why) {
        fail(ps, line, why);
        free(value);
        return;
    }
    if (k == K_LIBPATH && strstr(value, ".bundle"))
        log_warn(core,
                 "%s:%u: %s is a USB bundle driver; USB readers are found by matching, "
                 "not declared in reader.conf.d",
                 ps->file, line, value);
    ps->p.val[k] = value;
    bool full = true;
    for (int i = 0; i < K_COUNT; i++)
        full = full && ps->p.val[i];
    if (full) /* all four keys: the entry is whole (vsmartcard's vpcd file) */
        close_entry(ps);
}

static bool bare_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("\\/-._@:=", c) != NULL);
}

static const char TOKENIZE_OOM[] = "out of memory";

/*
 * Cut one line (no '\n') into tokens. Returns the number of tokens found (at most 3 are kept in
 * tok, malloc'd; quoted[i] tells whether token i was quoted). On a mistake *why says what, and
 * the tokens before it are kept.
 */
static int tokenize(const char *s, size_t len, char *tok[3], bool quoted[3], const char **why)
{
    int n = 0;
    size_t i = 0;
    while (i < len) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\r') {
            i++;
            continue;
        }
        if (c == '#')
            break;
        size_t start, end;
        bool q = false;
        if (c == '"' || c == '\'') {
            start = ++i;
            while (i < len && s[i] != c)
                i++;
            if (i == len) {
                *why = "unterminated quoted string";
                return -1;
            }
            end = i++;
            q = true;
        } else if (bare_char(c)) {
            start = i;
            while (i < len && bare_char(s[i]))
                i++;
            end = i;
        } else {
            *why = c == '\0' ? "NUL byte in the line" : "unexpected character";
            return -1;
        }
        if (end - start > TOKEN_MAX) {
            *why = "value too long";
            return -1;
        }
        if (n < 3) {
            tok[n] = strndup(s + start, end - start);
            if (!tok[n]) {
                *why = TOKENIZE_OOM;
                return -1;
            }
            quoted[n] = q;
        }
        n++;
    }
    return n;
}

/* One line of the file. */
static void take_line(struct parser *ps, unsigned line, const char *s, size_t len)
{
    char *tok[3] = {NULL, NULL, NULL};
    bool quoted[3] = {false, false, false};
    const char *why = NULL;
    (void)tokenize(s, len, tok, quoted, &why); /* the tokens themselves say how many */
    if (!why) {
        if (!tok[0])
            return; /* blank or comment */
        if (quoted[0])
            why = "a quoted key";
        else if (!tok[1])
            why = "a key without a value";
        else if (tok[2])
            why = "more than one value on the line";
    }
    if (why == TOKENIZE_OOM) {
        ps->oom = true;
    } else if (why) {
        /* Place the mistake in the right entry: a known key still starts or joins one. */
        int k = tok[0] ? find_key(tok[0]) : K_COUNT;
        if (k < K_COUNT && begin_key(ps, k, line) && !ps->oom)
            ps->p.val[k] = strdup("");
        fail(ps, line, why);
    } else {
        take_pair(ps, line, tok[0], tok[1]);
        tok[1] = NULL;
    }
    for (int i = 0; i < 3; i++)
        free(tok[i]);
}

int readerconf_parse(struct readerconf *conf, const char *text, size_t len, const char *file,
                     unsigned flags, readerconf_error_fn err, void *user)
{
    struct parser ps = {
        .conf = conf, .file = file ? file : "?", .flags = flags, .err = err, .user = user};
    unsigned line = 0;
    size_t pos = 0;
    while (pos < len && !ps.oom) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        take_line(&ps, ++line, text + pos, end - pos);
        pos = end + 1;
    }
    if (!ps.oom)
        close_entry(&ps);
    pending_clear(&ps.p);
    return ps.oom ? -1 : ps.added;
}

/* Read a whole file (at most READERCONF_FILE_MAX bytes). 0 or -1 with why. */
static int read_file(const char *path, char **out, size_t *len, char *why, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(why, cap, "cannot open it: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)READERCONF_FILE_MAX) {
        snprintf(why, cap, "not a regular file of at most %u bytes", READERCONF_FILE_MAX);
        close(fd);
        return -1;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = 0;
    while (buf && n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static int load_file(struct readerconf *conf, const char *path, unsigned flags,
                     readerconf_error_fn err, void *user)
{
    char why[256];
    char *text = NULL;
    size_t len = 0;
    if (read_file(path, &text, &len, why, sizeof why) < 0) {
        conf->refused++;
        if (err)
            err(user, path, 0, why);
        else
            log_error(core, "%s: %s; its readers are not started", path, why);
        return 0;
    }
    int n = readerconf_parse(conf, text, len, path, flags, err, user);
    free(text);
    return n;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int readerconf_load(struct readerconf *conf, const char *path, unsigned flags,
                    readerconf_error_fn err, void *user)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0; /* no directory: no readers declared */
    if (S_ISREG(st.st_mode))
        return load_file(conf, path, flags, err, user);
    DIR *d = opendir(path);
    if (!d) {
        char why[128];
        snprintf(why, sizeof why, "cannot read the directory: %s", strerror(errno));
        if (err)
            err(user, path, 0, why);
        else
            log_error(core, "%s: %s", path, why);
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char **grown = realloc(names, (n + 1) * sizeof(*grown));
        char *full = NULL;
        if (grown) {
            names = grown;
            if (asprintf(&full, "%s/%s", path, de->d_name) < 0)
                full = NULL;
        }
        if (!full)
            rc = -1;
        else
            names[n++] = full;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    int total = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            int k = load_file(conf, names[i], flags, err, user);
            if (k < 0)
                rc = -1;
            else
                total += k;
        }
        free(names[i]);
    }
    free(names);
    return rc < 0 ? -1 : total;
}

void readerconf_free(struct readerconf *conf)
{
    for (size_t i = 0; i < conf->n; i++) {
        free(conf->v[i].friendly_name);
        free(conf->v[i].device_name);
        free(conf->v[i].lib_path);
        free(conf->v[i].file);
    }
    free(conf->v);
    memset(conf, 0, sizeof *conf);
}
