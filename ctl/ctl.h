/* ctl.h — plexusctl's parts: HTTP calls (http.c), output (out.c),
 * the commands (plexusctl.c). plexusctl is a client of the admin API and
 * nothing more: it links no broker code, only libcurl and jansson. */
#ifndef PLEXUS_CTL_H
#define PLEXUS_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Exit codes, stable for scripts (plexusctl --help lists them). */
enum {
    CTL_OK = 0,
    CTL_FAILED = 1,      /* the broker refused or failed the request */
    CTL_USAGE = 2,       /* bad command line */
    CTL_UNREACHABLE = 3, /* no broker answered at the URL */
    CTL_DENIED = 4,      /* wrong user or password, or not an administrator */
};

typedef struct ctl {
    const char *url;    /* http://127.0.0.1:15672 */
    const char *user;   /* USER:PASSWORD */
    bool json;          /* print JSON instead of tables */
    const char *cacert; /* https: the CA certificates (PEM) to trust instead of the system's */
    bool insecure;      /* https: trust any certificate (tests, first setup) */
} ctl;

/* One request. path segments must be escaped already (ctl_escape).
 * On success *out is the parsed JSON answer (NULL if none); on failure
 * the error is printed and the exit code returned. */
int ctl_call(const ctl *c, const char *method, const char *path, const json_t *body, const char *extra_header,
             json_t **out);
/* A path segment, percent-encoded (caller frees). */
char *ctl_escape(const char *s);

/* Prints rows of objects as a table with these columns (keys; a dotted
 * key reads a nested field; "key|header" names the column). */
void ctl_table(const json_t *rows, const char *const *cols, size_t ncols);
/* Prints the supervision tree from /api/supervisors. */
void ctl_tree(const json_t *root);
/* Prints an object's fields as "key: value" lines (nested objects flattened). */
void ctl_fields(const json_t *o, const char *prefix);
void ctl_print_json(const json_t *v);

#endif
