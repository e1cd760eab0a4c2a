/*
 * scrmd configuration: defaults, the "key = value" file, single settings shared with the command
 * line, and systemd socket activation without libsystemd. See config.h for the precedence and
 * docs/scrmd.8 for the file format.
 *
 * The file is read line by line: blank lines and lines whose first non-blank character is '#'
 * are skipped; other lines must be "key = value" (spaces around both optional), and a '#' that
 * follows a blank starts a comment after the value ("reader = sim:0   # the first reader"). An
 * unknown key, a bad value, a NUL byte or an over-long line is an error that names the file and
 * line, so a typo never passes silently. The file must be a readable regular file.
 */
#include "daemon/config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <grp.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/opts.h"

#define MAX_LINE 1024

int scrmd_config_defaults(struct scrmd_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->discover = true;
    cfg->usb = -1;
    cfg->power_down_ms = 5000;
    cfg->ioctl_watchdog_ms = 150000;
    cfg->workers = 2;
    cfg->defect_threshold = 3;
    cfg->power_on_insert = true;
    cfg->realtime = true;
    cfg->max_clients = SCRMD_DEFAULT_MAX_CLIENTS;
    cfg->max_cards_per_client = SCRMD_DEFAULT_MAX_CARDS;
    cfg->io_timeout_ms = 10000;
    cfg->max_threads = 64;
    cfg->socket_mode = 0666;
    cfg->socket_gid = (gid_t)-1;
    cfg->admin_gid = (gid_t)-1;
    cfg->listen_fd = -1;
    cfg->pcsclite_listen_fd = -1;
    cfg->socket_path = strdup(SCRMD_DEFAULT_SOCKET);
    return cfg->socket_path ? 0 : -1;
}

void scrmd_config_free(struct scrmd_config *cfg)
{
    for (size_t i = 0; i < cfg->n_readers; i++) {
        free(cfg->readers[i]);
        free(cfg->reader_origin[i]);
    }
    free(cfg->readers);
    free(cfg->reader_origin);
    free(cfg->log_spec);
    free(cfg->reader_conf_dir);
    free(cfg->driver_dir);
    free(cfg->socket_path);
    free(cfg->socket_group);
    free(cfg->admin_group);
    free(cfg->pcsclite_socket);
    free(cfg->config_file);
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen_fd = -1;
    cfg->pcsclite_listen_fd = -1;
}

static bool parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"0", "no", "false", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool parse_mode(const char *v, uint32_t *out)
{
    if (!*v)
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long m = strtoul(v, &end, 8);
    if (errno || *end || m > 07777)
        return false;
    *out = (uint32_t)m;
    return true;
}

/* Resolve a group name or number. */
static bool parse_group(const char *v, gid_t *out)
{
    uint32_t n;
    if (scrm_parse_u32(v, 0x7FFFFFFF, &n)) {
        *out = (gid_t)n;
        return true;
    }
    char buf[4096];
    struct group gr, *res = NULL;
    if (getgrnam_r(v, &gr, buf, sizeof(buf), &res) != 0 || !res)
        return false;
    *out = res->gr_gid;
    return true;
}

static int replace_string(char **slot, const char *v)
{
    char *s = strdup(v);
    if (!s)
        return -1;
    free(*slot);
    *slot = s;
    return 0;
}

static int add_reader(struct scrmd_config *cfg, const char *v)
{
    char **grown = realloc(cfg->readers, (cfg->n_readers + 1) * sizeof(*grown));
    if (!grown)
        return -1;
    cfg->readers = grown;
    grown = realloc(cfg->reader_origin, (cfg->n_readers + 1) * sizeof(*grown));
    if (!grown)
        return -1;
    cfg->reader_origin = grown;
    cfg->reader_origin[cfg->n_readers] = NULL;
    if (!(cfg->readers[cfg->n_readers] = strdup(v)))
        return -1;
    cfg->n_readers++;
    return 0;
}

/* The shape every device string has: driver:address[:options], a driver name of letters, digits,
 * '_' and '-', a non-empty address; no blanks or control characters anywhere. */
static bool device_string_ok(const char *v, char *why, size_t why_len)
{
    size_t drv = strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
    if (drv == 0 || v[drv] != ':' || v[drv + 1] == '\0' || v[drv + 1] == ':') {
        snprintf(why, why_len, "bad device string '%s' (expected driver:address[:options])", v);
        return false;
    }
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7F) {
            snprintf(why, why_len, "blank or control character in device string '%s'", v);
            return false;
        }
    return true;
}

/* Numeric keys: name, field, maximum. */
static int set_number(struct scrmd_config *cfg, const char *key, const char *v, bool *known)
{
    uint32_t n;
    *known = true;
    if (strcmp(key, "power_down_ms") == 0) {
        if (!scrm_parse_u32(v, 3600000, &n))
            return -1;
        cfg->power_down_ms = n;
    } else if (strcmp(key, "ioctl_watchdog_ms") == 0) {
        if (!scrm_parse_u32(v, 86400000, &n))
            return -1;
        cfg->ioctl_watchdog_ms = n;
    } else if (strcmp(key, "workers") == 0) {
        if (!scrm_parse_u32(v, 64, &n) || n == 0)
            return -1;
        cfg->workers = n;
    } else if (strcmp(key, "defect_threshold") == 0) {
        if (!scrm_parse_u32(v, 1000, &n) || n == 0)
            return -1;
        cfg->defect_threshold = n;
    } else if (strcmp(key, "max_clients") == 0) {
        if (!scrm_parse_u32(v, UINT32_MAX, &cfg->max_clients))
            return -1;
    } else if (strcmp(key, "max_cards_per_client") == 0) {
        if (!scrm_parse_u32(v, UINT32_MAX, &cfg->max_cards_per_client))
            return -1;
    } else if (strcmp(key, "max_threads") == 0) {
        if (!scrm_parse_u32(v, 65536, &cfg->max_threads))
            return -1;
    } else if (strcmp(key, "io_timeout_ms") == 0) {
        if (!scrm_parse_u32(v, 3600000, &cfg->io_timeout_ms))
            return -1;
    } else {
        *known = false;
    }
    return 0;
}

/* Boolean keys. */
static int set_flag(struct scrmd_config *cfg, const char *key, const char *v, bool *known)
{
    bool *field = NULL;
    if (strcmp(key, "discover") == 0)
        field = &cfg->discover;
    else if (strcmp(key, "power_on_insert") == 0)
        field = &cfg->power_on_insert;
    else if (strcmp(key, "trace_ioctl") == 0)
        field = &cfg->trace_ioctl;
    else if (strcmp(key, "realtime") == 0)
        field = &cfg->realtime;
    *known = field != NULL;
    return field && !parse_bool(v, field) ? -1 : 0;
}

/* A group key: a name or number, "" for none. */
static int set_group(char **name, gid_t *gid, const char *v)
{
    gid_t g;
    if (!*v) {
        free(*name);
        *name = NULL;
        *gid = (gid_t)-1;
        return 0;
    }
    if (!parse_group(v, &g) || replace_string(name, v) < 0)
        return -1;
    *gid = g;
    return 0;
}

/* String keys. */
static int set_text(struct scrmd_config *cfg, const char *key, const char *v, bool *known)
{
    *known = true;
    if (strcmp(key, "reader") == 0)
        return *v ? add_reader(cfg, v) : -1;
    if (strcmp(key, "log") == 0)
        return replace_string(&cfg->log_spec, v);
    if (strcmp(key, "reader_conf_dir") == 0)
        return !*v || *v == '/' ? replace_string(&cfg->reader_conf_dir, v) : -1;
    if (strcmp(key, "driver_dir") == 0)
        return *v == '/' ? replace_string(&cfg->driver_dir, v) : -1;
    if (strcmp(key, "usb") == 0) {
        bool on;
        if (!parse_bool(v, &on))
            return -1;
        cfg->usb = on ? 1 : 0;
        return 0;
    }
    if (strcmp(key, "socket") == 0)
        return *v == '/' ? replace_string(&cfg->socket_path, v) : -1;
    if (strcmp(key, "socket_mode") == 0)
        return parse_mode(v, &cfg->socket_mode) ? 0 : -1;
    if (strcmp(key, "pcsclite_socket") == 0) {
        if (!*v) {
            free(cfg->pcsclite_socket);
            cfg->pcsclite_socket = NULL;
            return 0;
        }
        return *v == '/' ? replace_string(&cfg->pcsclite_socket, v) : -1;
    }
    if (strcmp(key, "socket_group") == 0)
        return set_group(&cfg->socket_group, &cfg->socket_gid, v);
    if (strcmp(key, "admin_group") == 0)
        return set_group(&cfg->admin_group, &cfg->admin_gid, v);
    *known = false;
    return 0;
}

int scrmd_config_set(struct scrmd_config *cfg, const char *key, const char *value, char *err,
                     size_t err_len)
{
    bool known = false;
    if (strcmp(key, "reader") == 0 && *value && !device_string_ok(value, err, err_len))
        return -1;
    int rc = set_number(cfg, key, value, &known);
    if (!known)
        rc = set_flag(cfg, key, value, &known);
    if (!known)
        rc = set_text(cfg, key, value, &known);
    if (!known)
        snprintf(err, err_len, "unknown setting '%s'", key);
    else if (rc < 0)
        snprintf(err, err_len, "bad value '%s' for '%s'", value, key);
    return known && rc == 0 ? 0 : -1;
}

/* Strip leading and trailing blanks in place; returns the new start. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* Cut a comment: a '#' at the start or after a blank ends the text. */
static void cut_comment(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            return;
        }
}

/* One line of the file. 0, or -1 with err set. */
static int load_line(struct scrmd_config *cfg, char *line, char *err, size_t err_len)
{
    cut_comment(line);
    char *s = trim(line);
    if (!*s)
        return 0;
    char *eq = strchr(s, '=');
    if (!eq) {
        snprintf(err, err_len, "expected 'key = value'");
        return -1;
    }
    *eq = '\0';
    return scrmd_config_set(cfg, trim(s), trim(eq + 1), err, err_len);
}

/* Open path for reading: a readable regular file. NULL with err set. */
static FILE *open_config(const char *path, char *err, size_t err_len)
{
    struct stat st;
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, err_len, "%s: cannot read it: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_len, "%s: %s", path,
                 S_ISDIR(st.st_mode) ? "is a directory, not a configuration file"
                                     : "not a regular file");
        fclose(f);
        return NULL;
    }
    return f;
}

/* Remember where the readers added since `first` came from ("file:line"). */
static void note_origin(struct scrmd_config *cfg, size_t first, const char *path, unsigned no)
{
    for (size_t i = first; i < cfg->n_readers; i++) {
        size_t len = strlen(path) + 16;
        char *o = malloc(len);
        if (o)
            snprintf(o, len, "%s:%u", path, no);
        free(cfg->reader_origin[i]);
        cfg->reader_origin[i] = o;
    }
}

int scrmd_config_load(struct scrmd_config *cfg, const char *path, char *err, size_t err_len)
{
    FILE *f = open_config(path, err, err_len);
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    char why[256];
    unsigned no = 0;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        size_t before = cfg->n_readers;
        no++;
        if (len > MAX_LINE - 1) {
            snprintf(err, err_len, "%s:%u: line longer than %d characters", path, no, MAX_LINE - 2);
            rc = -1;
        } else if (memchr(line, '\0', (size_t)len)) {
            snprintf(err, err_len, "%s:%u: the line holds a NUL byte (is this a text file?)", path,
                     no);
            rc = -1;
        } else if (load_line(cfg, line, why, sizeof(why)) < 0) {
            snprintf(err, err_len, "%s:%u: %s", path, no, why);
            rc = -1;
        } else {
            note_origin(cfg, before, path, no);
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, err_len, "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    if (rc == 0 && replace_string(&cfg->config_file, path) < 0) {
        snprintf(err, err_len, "out of memory");
        rc = -1;
    }
    return rc;
}

/* The i-th name of LISTEN_FDNAMES (colon-separated) into buf, "" if there is none. */
static void fd_name(const char *names, unsigned i, char *buf, size_t len)
{
    buf[0] = '\0';
    while (names && i--) {
        names = strchr(names, ':');
        if (names)
            names++;
    }
    if (names) {
        size_t n = strcspn(names, ":");
        if (n >= len)
            n = len - 1;
        memcpy(buf, names, n);
        buf[n] = '\0';
    }
}

/* Is the inherited socket fd the pcsc-lite one? By its name, else by the path it is bound to. */
static bool is_pcsclite_fd(const struct scrmd_config *cfg, int fd, const char *name)
{
    struct sockaddr_un sa;
    socklen_t len = sizeof sa;
    size_t n;
    if (strcmp(name, "pcsclite") == 0)
        return true;
    if (*name)
        return strstr(name, "pcscd") != NULL;
    memset(&sa, 0, sizeof sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || sa.sun_family != AF_UNIX)
        return false;
    sa.sun_path[sizeof sa.sun_path - 1] = '\0';
    if (cfg->pcsclite_socket && strcmp(sa.sun_path, cfg->pcsclite_socket) == 0)
        return true;
    n = strlen(sa.sun_path);
    return n >= 11 && strcmp(sa.sun_path + n - 11, "/pcscd.comm") == 0;
}

int scrmd_config_socket_activation(struct scrmd_config *cfg)
{
    const char *pid = getenv("LISTEN_PID");
    const char *fds = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    uint32_t p, n;
    if (!pid || !fds || !scrm_parse_u32(pid, 0x7FFFFFFF, &p) || (pid_t)p != getpid() ||
        !scrm_parse_u32(fds, 1024, &n))
        return 0;
    if (n > 2) {
        log_error(core, "socket activation passed %u sockets; scrmd takes one or two", n);
        return -1;
    }
    for (unsigned i = 0; i < n; i++) {
        int fd = 3 + (int)i; /* SD_LISTEN_FDS_START */
        int flags = fcntl(fd, F_GETFD);
        char name[256];
        int *slot;
        if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
            log_error(core, "socket activation: fd %d is not usable: %s", fd, strerror(errno));
            return -1;
        }
        fd_name(names, i, name, sizeof name);
        slot = is_pcsclite_fd(cfg, fd, name) ? &cfg->pcsclite_listen_fd : &cfg->listen_fd;
        if (*slot >= 0) {
            log_error(core, "socket activation passed two %s sockets",
                      slot == &cfg->listen_fd ? "scrm" : "pcsc-lite");
            return -1;
        }
        *slot = fd;
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return (int)n;
}
