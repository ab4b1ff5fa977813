/* out.c — plexusctl's output: aligned tables, the tree, key: value
 * lines, or the API's JSON as it came (--json), for scripts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

void ctl_print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s)
        puts(s);
    free(s);
}

/* A field as text; "a.b" reads o["a"]["b"]. */
static char *cell(const json_t *o, const char *key)
{
    char k[128];
    snprintf(k, sizeof k, "%.*s", (int)strcspn(key, "|"), key);
    const json_t *v = o;
    for (char *save = NULL, *part = strtok_r(k, ".", &save); part && v; part = strtok_r(NULL, ".", &save))
        v = json_object_get(v, part);
    if (!v || json_is_null(v))
        return strdup("");
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_array(v)) { /* tags */
        size_t i, used = 0;
        json_t *e;
        char out[512] = "";
        json_array_foreach(v, i, e)
        {
            char *one = json_is_string(e) ? strdup(json_string_value(e)) : json_dumps(e, JSON_ENCODE_ANY);
            used += (size_t)snprintf(out + used, used < sizeof out ? sizeof out - used : 0, "%s%s", i ? "," : "",
                                     one ? one : "");
            free(one);
        }
        return strdup(out);
    }
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* A column's header: after '|' if it names one, else the key's last part. */
static const char *header(const char *col)
{
    const char *bar = strchr(col, '|'), *dot = strrchr(col, '.');
    return bar ? bar + 1 : dot ? dot + 1 : col;
}

void ctl_table(const json_t *rows, const char *const *cols, size_t ncols)
{
    size_t n = json_array_size(rows);
    size_t *w = calloc(ncols, sizeof *w);
    char **cells = calloc(n * ncols + 1, sizeof *cells);
    if (!w || !cells) {
        free(w);
        free(cells);
        return;
    }
    for (size_t c = 0; c < ncols; c++)
        w[c] = strlen(header(cols[c]));
    for (size_t r = 0; r < n; r++)
        for (size_t c = 0; c < ncols; c++) {
            char *s = cell(json_array_get(rows, r), cols[c]);
            cells[r * ncols + c] = s;
            if (s && strlen(s) > w[c])
                w[c] = strlen(s);
        }
    for (size_t c = 0; c < ncols; c++) {
        const char *h = header(cols[c]);
        for (const char *p = h; *p; p++)
            putchar(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        printf("%*s", c + 1 < ncols ? (int)(w[c] - strlen(h) + 2) : 0, "");
    }
    putchar('\n');
    for (size_t r = 0; r < n; r++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *s = cells[r * ncols + c] ? cells[r * ncols + c] : "";
            if (c + 1 < ncols)
                printf("%-*s  ", (int)w[c], s);
            else
                printf("%s", s);
        }
        putchar('\n');
    }
    for (size_t i = 0; i < n * ncols; i++)
        free(cells[i]);
    free(cells);
    free(w);
}

static void tree_node(const json_t *n, const char *indent, bool last, bool root)
{
    const char *id = json_string_value(json_object_get(n, "id"));
    const char *beh = json_string_value(json_object_get(n, "behaviour"));
    const char *pid = json_string_value(json_object_get(n, "pid"));
    const char *strat = json_string_value(json_object_get(n, "strategy"));
    printf("%s%s%s", indent, root ? "" : last ? "└── " : "├── ", id ? id : "?");
    if (strat)
        printf(" (%s)", strat);
    else if (beh)
        printf(" [%s]", beh);
    printf(" %s restarts=%lld mailbox=%lld\n", pid && *pid ? pid : "-",
           (long long)json_integer_value(json_object_get(n, "restarts")),
           (long long)json_integer_value(json_object_get(n, "mailbox")));
    const json_t *kids = json_object_get(n, "children");
    char sub[512];
    snprintf(sub, sizeof sub, "%s%s", indent, root ? "" : last ? "    " : "│   ");
    for (size_t i = 0; i < json_array_size(kids); i++)
        tree_node(json_array_get(kids, i), sub, i + 1 == json_array_size(kids), false);
}

void ctl_tree(const json_t *root) { tree_node(root, "", true, true); }

void ctl_fields(const json_t *o, const char *prefix)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        char name[256];
        snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", k);
        if (json_is_object(v)) {
            ctl_fields(v, name);
            continue;
        }
        char *s = json_is_string(v) ? strdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        printf("%s: %s\n", name, s ? s : "");
        free(s);
    }
}
