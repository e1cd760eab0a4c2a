/*
 * Info.plist reader (bundle.h). expat delivers the elements; a small state machine follows the
 * property list's shape: the top-level <dict> alternates <key> and a value; a value is kept when
 * it is a <string> (scalars) or an <array> of <string> (the ID and name arrays); every other
 * value (dict, integer, true/false, nested arrays) is skipped whole.
 */
#include "sources/bundle.h"

#include <dirent.h>
#include <errno.h>
#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"

enum field { F_NONE, F_EXEC, F_NAME, F_VID, F_PID, F_FRIENDLY, F_COUNT };

struct strv {
    char **v;
    size_t n;
};

struct plist_state {
    XML_Parser xp;
    int depth;          /* element depth (plist = 1, top dict = 2) */
    int skip_depth;     /* > 0: inside a skipped value that started at this depth */
    bool in_key;        /* collecting <key> text of the top dict */
    bool in_string;     /* collecting <string> text of a kept value */
    enum field current; /* the value being read belongs to this key */
    bool in_array;
    char *text; /* text of the current key or string */
    size_t text_len;
    char *exec, *bname;
    struct strv arr[F_COUNT];
    const char *error;
};

static void set_error(struct plist_state *st, const char *why)
{
    if (!st->error)
        st->error = why;
    XML_StopParser(st->xp, XML_FALSE);
}

static enum field field_of(const char *key)
{
    static const char *const names[F_COUNT] = {NULL,           "CFBundleExecutable",
                                               "CFBundleName", "ifdVendorID",
                                               "ifdProductID", "ifdFriendlyName"};
    for (int f = F_EXEC; f < F_COUNT; f++)
        if (strcmp(key, names[f]) == 0)
            return (enum field)f;
    return F_NONE;
}

static void XMLCALL on_start(void *user, const XML_Char *el, const XML_Char **attr)
{
    struct plist_state *st = user;
    (void)attr;
    st->depth++;
    if (st->skip_depth)
        return;
    if (st->depth == 1) {
        if (strcmp(el, "plist") != 0)
            set_error(st, "the root element is not <plist>");
        return;
    }
    if (st->depth == 2) {
        if (strcmp(el, "dict") != 0)
            set_error(st, "the property list is not a <dict>");
        return;
    }
    if (st->depth == 3 && strcmp(el, "key") == 0) {
        st->in_key = true;
        st->text_len = 0;
        return;
    }
    bool wanted = st->current != F_NONE;
    if (st->depth == 3 && wanted && strcmp(el, "array") == 0 &&
        (st->current == F_VID || st->current == F_PID || st->current == F_FRIENDLY)) {
        st->in_array = true;
        return;
    }
    if (wanted && strcmp(el, "string") == 0 &&
        ((st->depth == 3 && !st->in_array) || (st->depth == 4 && st->in_array))) {
        st->in_string = true;
        st->text_len = 0;
        return;
    }
    st->skip_depth = st->depth; /* a value we do not use */
}

static void take_text(struct plist_state *st, char **out)
{
    char *s = strndup(st->text ? st->text : "", st->text_len);
    if (!s) {
        set_error(st, "out of memory");
        return;
    }
    /* trim blanks around the value */
    char *b = s;
    while (*b == ' ' || *b == '\t' || *b == '\n' || *b == '\r')
        b++;
    size_t n = strlen(b);
    while (n && (b[n - 1] == ' ' || b[n - 1] == '\t' || b[n - 1] == '\n' || b[n - 1] == '\r'))
        n--;
    memmove(s, b, n);
    s[n] = '\0';
    *out = s;
}

static void XMLCALL on_end(void *user, const XML_Char *el)
{
    struct plist_state *st = user;
    (void)el;
    int d = st->depth--;
    if (st->skip_depth) {
        if (d == st->skip_depth) {
            st->skip_depth = 0;
            if (d == 3)
                st->current = F_NONE;
        }
        return;
    }
    if (st->in_key && d == 3) {
        st->in_key = false;
        char *key = NULL;
        take_text(st, &key);
        st->current = key ? field_of(key) : F_NONE;
        free(key);
        return;
    }
    if (st->in_string) {
        st->in_string = false;
        char *val = NULL;
        take_text(st, &val);
        if (!val)
            return;
        if (st->in_array) {
            struct strv *a = &st->arr[st->current];
            char **grown = realloc(a->v, (a->n + 1) * sizeof(*grown));
            if (!grown) {
                free(val);
                set_error(st, "out of memory");
                return;
            }
            a->v = grown;
            a->v[a->n++] = val;
        } else {
            char **slot = st->current == F_EXEC ? &st->exec : &st->bname;
            if (st->current == F_EXEC || st->current == F_NAME) {
                free(*slot);
                *slot = val;
            } else {
                free(val); /* a scalar where an array was expected: ignored */
            }
            st->current = F_NONE;
        }
        return;
    }
    if (st->in_array && d == 3) {
        st->in_array = false;
        st->current = F_NONE;
    }
}

static void XMLCALL on_text(void *user, const XML_Char *s, int len)
{
    struct plist_state *st = user;
    if (st->skip_depth || (!st->in_key && !st->in_string) || len <= 0)
        return;
    if (st->text_len + (size_t)len > 65536) {
        set_error(st, "a value longer than 64 KiB");
        return;
    }
    char *grown = realloc(st->text, st->text_len + (size_t)len + 1);
    if (!grown) {
        set_error(st, "out of memory");
        return;
    }
    st->text = grown;
    memcpy(st->text + st->text_len, s, (size_t)len);
    st->text_len += (size_t)len;
}

static bool parse_id(const char *s, uint16_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 16);
    if (!*s || errno || *end || v > 0xFFFF || s[0] == '-')
        return false;
    *out = (uint16_t)v;
    return true;
}

static void state_free(struct plist_state *st)
{
    for (int f = 0; f < F_COUNT; f++) {
        for (size_t i = 0; i < st->arr[f].n; i++)
            free(st->arr[f].v[i]);
        free(st->arr[f].v);
    }
    free(st->exec);
    free(st->bname);
    free(st->text);
}

/* Build the bundle from the parsed values. 0 or -1 with why. */
static int make_bundle(struct plist_state *st, const char *plist, const char *lib_dir,
                       struct bundle *out, const char **why)
{
    size_t n = st->arr[F_VID].n;
    if (!st->exec || !*st->exec || strchr(st->exec, '/')) {
        *why = "no usable CFBundleExecutable";
        return -1;
    }
    if (st->arr[F_PID].n != n || st->arr[F_FRIENDLY].n != n) {
        *why = "ifdVendorID, ifdProductID and ifdFriendlyName have different lengths";
        return -1;
    }
    memset(out, 0, sizeof *out);
    out->class_driver = st->bname && strcmp(st->bname, "CCIDCLASSDRIVER") == 0;
    out->ids = n ? calloc(n, sizeof(*out->ids)) : NULL;
    if ((n && !out->ids) || asprintf(&out->lib, "%s/%s", lib_dir, st->exec) < 0 ||
        !(out->plist = strdup(plist))) {
        *why = "out of memory";
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!parse_id(st->arr[F_VID].v[i], &out->ids[i].vid) ||
            !parse_id(st->arr[F_PID].v[i], &out->ids[i].pid)) {
            *why = "a vendor or product ID that is not a 16-bit hex number";
            return -1;
        }
        out->ids[i].name = st->arr[F_FRIENDLY].v[i];
        st->arr[F_FRIENDLY].v[i] = NULL;
        out->n_ids++;
    }
    return 0;
}

static void bundle_free(struct bundle *bd)
{
    for (size_t i = 0; i < bd->n_ids; i++)
        free(bd->ids[i].name);
    free(bd->ids);
    free(bd->lib);
    free(bd->plist);
}

int bundles_load_plist(struct bundles *b, const char *plist, const char *lib_dir, char *err,
                       size_t err_cap)
{
    FILE *f = fopen(plist, "rbe");
    if (!f) {
        snprintf(err, err_cap, "%s", strerror(errno));
        return -1;
    }
    struct plist_state st = {0};
    st.xp = XML_ParserCreate("UTF-8");
    const char *why = st.xp ? NULL : "out of memory";
    if (st.xp) {
        XML_SetUserData(st.xp, &st);
        XML_SetElementHandler(st.xp, on_start, on_end);
        XML_SetCharacterDataHandler(st.xp, on_text);
    }
    char buf[16384];
    size_t total = 0;
    bool done = false;
    while (!why && !done) {
        size_t n = fread(buf, 1, sizeof buf, f);
        total += n;
        done = n < sizeof buf;
        if (total > BUNDLE_PLIST_MAX)
            why = "file too large";
        else if (XML_Parse(st.xp, buf, (int)n, done) == XML_STATUS_ERROR)
            why = st.error ? st.error : XML_ErrorString(XML_GetErrorCode(st.xp));
    }
    unsigned long line = st.xp ? XML_GetCurrentLineNumber(st.xp) : 0;
    fclose(f);
    if (st.xp)
        XML_ParserFree(st.xp);
    struct bundle bd = {0};
    if (!why && make_bundle(&st, plist, lib_dir, &bd, &why) == 0) {
        struct bundle *grown = realloc(b->v, (b->n + 1) * sizeof(*grown));
        if (grown) {
            b->v = grown;
            b->v[b->n++] = bd;
        } else {
            why = "out of memory";
            bundle_free(&bd);
        }
    } else {
        bundle_free(&bd);
    }
    state_free(&st);
    if (why) {
        snprintf(err, err_cap, "line %lu: %s", line, why);
        return -1;
    }
    return 0;
}

int bundles_load_dir(struct bundles *b, const char *driver_dir)
{
    DIR *d = opendir(driver_dir);
    if (!d)
        return 0;
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 8 || strcmp(de->d_name + len - 7, ".bundle") != 0)
            continue;
        char *plist = NULL, *lib_dir = NULL;
        char err[256];
        if (asprintf(&plist, "%s/%s/Contents/Info.plist", driver_dir, de->d_name) < 0)
            plist = NULL;
        if (asprintf(&lib_dir, "%s/%s/Contents/Linux", driver_dir, de->d_name) < 0)
            lib_dir = NULL;
        if (plist && lib_dir) {
            if (bundles_load_plist(b, plist, lib_dir, err, sizeof err) == 0)
                count++;
            else
                log_error(core, "driver bundle %s: %s; bundle ignored", plist, err);
        }
        free(plist);
        free(lib_dir);
    }
    closedir(d);
    return count;
}

bool bundles_match(const struct bundles *b, uint16_t vid, uint16_t pid,
                   const struct bundle **primary, const struct bundle **fallback, const char **name)
{
    const struct bundle *specific = NULL, *klass = NULL;
    const char *sname = NULL, *kname = NULL;
    for (size_t i = 0; i < b->n; i++) {
        const struct bundle *bd = &b->v[i];
        for (size_t j = 0; j < bd->n_ids; j++) {
            if (bd->ids[j].vid != vid || bd->ids[j].pid != pid)
                continue;
            if (bd->class_driver && !klass) {
                klass = bd;
                kname = bd->ids[j].name;
            } else if (!bd->class_driver && !specific) {
                specific = bd;
                sname = bd->ids[j].name;
            }
        }
    }
    *primary = specific ? specific : klass;
    *fallback = specific ? klass : NULL;
    *name = specific ? sname : kname;
    return *primary != NULL;
}

void bundles_free(struct bundles *b)
{
    for (size_t i = 0; i < b->n; i++)
        bundle_free(&b->v[i]);
    free(b->v);
    memset(b, 0, sizeof *b);
}
