/* SPDX-License-Identifier: Apache-2.0 */
/* The manifests source. See source_manifests.h. */
#include "source_manifests.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "manifest.h"
#include "util.h"

enum { MAX_WATCHED_DIRS = 256, MAX_DEPTH = 8 };

typedef struct FileInfo {
    char *path;
    struct timespec mtime;
    off_t size;
    ino_t ino;
    json_t *keys; /* object: key -> [kind, ns, name] of the objects this file provided */
    unsigned errors;
    bool seen; /* found by the current scan */
} FileInfo;

typedef struct DirWatch {
    uv_fs_event_t ev;
    struct ManifestSource *m;
    char *path;
    bool seen;
    bool closing;
} DirWatch;

struct ManifestSource {
    uv_loop_t *loop;
    Store *store;
    char **paths;
    void (*changed)(void *ud);
    void *ud;
    FileInfo *files;
    size_t nfiles;
    DirWatch **dirs;
    size_t ndirs;
    json_t *owner; /* key -> path of the file that provided it last */
    uv_timer_t rescan;
    uv_timer_t settle;
    int open_handles;
    bool closing;
    void (*done)(void *ud);
    void *done_ud;
};

static int has_suffix(const char *n)
{
    size_t l = strlen(n);
    return (l > 5 && !strcmp(n + l - 5, ".yaml")) || (l > 4 && !strcmp(n + l - 4, ".yml")) ||
           (l > 5 && !strcmp(n + l - 5, ".json"));
}

int msrc_new(uv_loop_t *loop, Store *store, char *const *paths, void (*changed)(void *ud), void *ud,
             ManifestSource **ret)
{
    ManifestSource *m = calloc(1, sizeof(*m));
    size_t n = 0;
    if (!m)
        return -ENOMEM;
    while (paths && paths[n])
        n++;
    m->paths = calloc(n + 1, sizeof(char *));
    m->owner = json_object();
    if (!m->paths || !m->owner)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (!(m->paths[i] = strdup(paths[i])))
            goto fail;
    m->loop = loop;
    m->store = store;
    m->changed = changed;
    m->ud = ud;
    m->rescan.data = m->settle.data = m;
    uv_timer_init(loop, &m->rescan);
    uv_timer_init(loop, &m->settle);
    m->open_handles = 2;
    *ret = m;
    return 0;
fail:
    for (size_t i = 0; m->paths && m->paths[i]; i++)
        free(m->paths[i]);
    free(m->paths);
    json_decref(m->owner);
    free(m);
    return -ENOMEM;
}

static FileInfo *find_file(ManifestSource *m, const char *path)
{
    for (size_t i = 0; i < m->nfiles; i++)
        if (!strcmp(m->files[i].path, path))
            return &m->files[i];
    return NULL;
}

typedef struct LoadCtx {
    ManifestSource *m;
    json_t *keys;
    unsigned errors;
    bool changed;
    const char *file;
} LoadCtx;

static int on_obj(void *ud, json_t *obj, const char *file, int line)
{
    LoadCtx *c = ud;
    const char *kind = obj_kind(obj), *ns = obj_ns(obj), *name = obj_name(obj);
    int r = store_put(c->m->store, obj);
    if (r < 0) {
        c->errors++;
        log_event(LOG_WARN, "manifests", "object ignored", "{s:s, s:i, s:s, s:s}", "file", file,
                  "line", line, "kind", kind, "error",
                  r == -EINVAL ? "kind or metadata.name missing" : strerror(-r));
        return r == -ENOMEM ? r : 0;
    }
    if (r > 0)
        c->changed = true;
    char *key = util_strdup_printf("%s\x1f%s\x1f%s", kind, ns, name);
    if (!key)
        return -ENOMEM;
    json_object_set_new(c->keys, key, json_pack("[sss]", kind, ns, name));
    json_object_set_new(c->m->owner, key, json_string(c->file));
    free(key);
    return 0;
}

static void on_err(void *ud, const char *file, int line, const char *msg)
{
    LoadCtx *c = ud;
    c->errors++;
    log_event(LOG_WARN, "manifests", "cannot load a document, skipping it", "{s:s, s:i, s:s}",
              "file", file, "line", line, "error", msg);
}

/* Remove the objects of @old_keys missing from @new_keys, if @file still owns them. */
static bool drop_missing(ManifestSource *m, const char *file, json_t *old_keys, json_t *new_keys)
{
    const char *key;
    json_t *v;
    bool changed = false;
    json_object_foreach(old_keys, key, v)
    {
        if (new_keys && json_object_get(new_keys, key))
            continue;
        const char *owner = json_string_value(json_object_get(m->owner, key));
        if (owner && strcmp(owner, file))
            continue; /* another file provides it now */
        json_object_del(m->owner, key);
        if (store_delete(m->store, json_string_value(json_array_get(v, 0)),
                         json_string_value(json_array_get(v, 1)),
                         json_string_value(json_array_get(v, 2))) > 0)
            changed = true;
    }
    return changed;
}

static bool load_file(ManifestSource *m, FileInfo *f)
{
    LoadCtx c = {.m = m, .keys = json_object(), .file = f->path};
    if (!c.keys)
        return false;
    int r = manifest_load_path(f->path, on_obj, on_err, &c);
    if (r < 0 && !c.errors)
        c.errors++;
    if (c.errors) {
        /* a file mid-edit must not take its objects away: keep what it provided before */
        const char *key;
        json_t *v;
        json_object_foreach(f->keys, key, v)
        {
            if (!json_object_get(c.keys, key))
                json_object_set(c.keys, key, v);
        }
    } else if (f->keys && drop_missing(m, f->path, f->keys, c.keys)) {
        c.changed = true;
    }
    json_decref(f->keys);
    f->keys = c.keys;
    f->errors = c.errors;
    log_event(LOG_DEBUG, "manifests", "file loaded", "{s:s, s:i, s:i}", "file", f->path, "objects",
              (int)json_object_size(c.keys), "errors", (int)c.errors);
    return c.changed;
}

static void on_fs_event(uv_fs_event_t *ev, const char *filename, int events, int status);

static void watch_dir(ManifestSource *m, const char *path)
{
    for (size_t i = 0; i < m->ndirs; i++) {
        if (!strcmp(m->dirs[i]->path, path)) {
            m->dirs[i]->seen = true;
            return;
        }
    }
    if (m->ndirs >= MAX_WATCHED_DIRS)
        return; /* the periodic check still covers it */
    DirWatch *d = calloc(1, sizeof(*d));
    DirWatch **nd = realloc(m->dirs, (m->ndirs + 1) * sizeof(*nd));
    if (!d || !nd || !(d->path = strdup(path))) {
        if (nd)
            m->dirs = nd;
        free(d);
        return;
    }
    m->dirs = nd;
    d->m = m;
    d->ev.data = d;
    d->seen = true;
    uv_fs_event_init(m->loop, &d->ev);
    m->open_handles++;
    int r = uv_fs_event_start(&d->ev, on_fs_event, path, 0);
    if (r < 0)
        log_event(LOG_DEBUG, "manifests", "cannot watch folder, relying on periodic checks",
                  "{s:s, s:s}", "folder", path, "err", uv_strerror(r));
    m->dirs[m->ndirs++] = d;
}

static void scan_file(ManifestSource *m, const char *path)
{
    FileInfo *f = find_file(m, path);
    if (!f) {
        FileInfo *nf = realloc(m->files, (m->nfiles + 1) * sizeof(*nf));
        if (!nf)
            return;
        m->files = nf;
        f = &m->files[m->nfiles];
        memset(f, 0, sizeof(*f));
        if (!(f->path = strdup(path)))
            return;
        m->nfiles++;
        f->size = -1;
    }
    f->seen = true;
}

static void scan_dir(ManifestSource *m, const char *path, int depth)
{
    struct dirent **ents = NULL;
    watch_dir(m, path);
    int n = scandir(path, &ents, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        const char *name = ents[i]->d_name;
        if (name[0] != '.') {
            char *child = util_strdup_printf("%s/%s", path, name);
            struct stat st;
            if (child && stat(child, &st) == 0) {
                if (S_ISDIR(st.st_mode) && depth < MAX_DEPTH)
                    scan_dir(m, child, depth + 1);
                else if (S_ISREG(st.st_mode) && has_suffix(name))
                    scan_file(m, child);
            }
            free(child);
        }
        free(ents[i]);
    }
    free(ents);
}

static void on_dir_closed(uv_handle_t *h)
{
    DirWatch *d = h->data;
    ManifestSource *m = d->m;
    free(d->path);
    free(d);
    m->open_handles--;
    if (m->closing && m->open_handles == 0) {
        void (*done)(void *) = m->done;
        void *ud = m->done_ud;
        free(m);
        if (done)
            done(ud);
    }
}

static bool file_changed(FileInfo *f, struct stat *st)
{
    return st->st_mtim.tv_sec != f->mtime.tv_sec || st->st_mtim.tv_nsec != f->mtime.tv_nsec ||
           st->st_size != f->size || st->st_ino != f->ino;
}

/* Find every file, reload the changed ones, drop the vanished ones. */
static int rescan(ManifestSource *m)
{
    bool changed = false;
    for (size_t i = 0; i < m->nfiles; i++)
        m->files[i].seen = false;
    for (size_t i = 0; i < m->ndirs; i++)
        m->dirs[i]->seen = false;
    for (size_t i = 0; m->paths[i]; i++) {
        struct stat st;
        if (stat(m->paths[i], &st) < 0)
            continue; /* vanished: its files are dropped below */
        if (S_ISDIR(st.st_mode)) {
            scan_dir(m, m->paths[i], 0);
        } else {
            /* editors replace files by rename: watch the folder, not the inode */
            char *dir = strdup(m->paths[i]);
            if (dir) {
                char *slash = strrchr(dir, '/');
                if (slash == dir)
                    dir[1] = 0; /* a file in "/" */
                else if (slash)
                    *slash = 0;
                watch_dir(m, slash ? dir : ".");
                free(dir);
            }
            scan_file(m, m->paths[i]);
        }
    }
    for (size_t i = 0; i < m->nfiles;) {
        FileInfo *f = &m->files[i];
        struct stat st;
        if (!f->seen || stat(f->path, &st) < 0) {
            log_event(LOG_INFO, "manifests", "file removed", "{s:s}", "file", f->path);
            if (f->keys && drop_missing(m, f->path, f->keys, NULL))
                changed = true;
            json_decref(f->keys);
            free(f->path);
            m->files[i] = m->files[--m->nfiles];
            continue;
        }
        if (file_changed(f, &st)) {
            f->mtime = st.st_mtim;
            f->size = st.st_size;
            f->ino = st.st_ino;
            if (load_file(m, f))
                changed = true;
        }
        i++;
    }
    for (size_t i = 0; i < m->ndirs;) {
        if (!m->dirs[i]->seen && !m->dirs[i]->closing) {
            m->dirs[i]->closing = true;
            uv_close((uv_handle_t *)&m->dirs[i]->ev, on_dir_closed);
            m->dirs[i] = m->dirs[--m->ndirs];
            continue;
        }
        i++;
    }
    if (changed && m->changed)
        m->changed(m->ud);
    return changed;
}

static void on_settle(uv_timer_t *t)
{
    rescan(t->data);
}

static void on_rescan(uv_timer_t *t)
{
    ManifestSource *m = t->data;
    rescan(m);
}

static void on_fs_event(uv_fs_event_t *ev, const char *filename, int events, int status)
{
    DirWatch *d = ev->data;
    (void)filename;
    (void)events;
    (void)status;
    if (d->m->closing)
        return;
    /* a burst of events (write, rename, chmod) becomes one rescan */
    if (!uv_is_active((uv_handle_t *)&d->m->settle))
        uv_timer_start(&d->m->settle, on_settle, MSRC_SETTLE_MS, 0);
}

int msrc_start(ManifestSource *m)
{
    rescan(m);
    uv_timer_start(&m->rescan, on_rescan, MSRC_RESCAN_MS, MSRC_RESCAN_MS);
    size_t n = 0;
    for (size_t i = 0; i < m->nfiles; i++)
        n += json_object_size(m->files[i].keys);
    log_event(LOG_INFO, "manifests", "manifests loaded", "{s:i, s:i, s:i}", "files", (int)m->nfiles,
              "objects", (int)n, "errors", (int)msrc_errors(m));
    return (int)n;
}

unsigned msrc_errors(const ManifestSource *m)
{
    unsigned n = 0;
    for (size_t i = 0; i < m->nfiles; i++)
        n += m->files[i].errors;
    return n;
}

static void on_timer_closed(uv_handle_t *h)
{
    ManifestSource *m = h->data;
    m->open_handles--;
    if (m->open_handles == 0) {
        void (*done)(void *) = m->done;
        void *ud = m->done_ud;
        free(m);
        if (done)
            done(ud);
    }
}

void msrc_close(ManifestSource *m, void (*done)(void *ud), void *ud)
{
    m->closing = true;
    m->done = done;
    m->done_ud = ud;
    for (size_t i = 0; i < m->nfiles; i++) {
        json_decref(m->files[i].keys);
        free(m->files[i].path);
    }
    free(m->files);
    m->files = NULL;
    m->nfiles = 0;
    for (size_t i = 0; m->paths[i]; i++)
        free(m->paths[i]);
    free(m->paths);
    m->paths = NULL;
    json_decref(m->owner);
    m->owner = NULL;
    for (size_t i = 0; i < m->ndirs; i++) {
        m->dirs[i]->closing = true;
        uv_close((uv_handle_t *)&m->dirs[i]->ev, on_dir_closed);
    }
    free(m->dirs);
    m->dirs = NULL;
    m->ndirs = 0;
    uv_close((uv_handle_t *)&m->rescan, on_timer_closed);
    uv_close((uv_handle_t *)&m->settle, on_timer_closed);
}
