/* users_file.c — users changed through the admin API survive a restart.
 *
 * DATA/users.json holds the users and their permissions as a definitions
 * document's "users" and "permissions" arrays (brk_users_export: names,
 * salted hashes, tags; brk_perms_export), rewritten whole and atomically
 * after each change. It exists only once users or permissions were
 * changed at run time; from then on it, not the configuration file, says
 * who the users are and what they may do (as with RabbitMQ, whose
 * configured default user is created on a new node only).
 *
 * Migration: a file written before permissions existed (a bare array of
 * users, or a document without "permissions") gives each of its users
 * full access to "/" (".*" three times), which is what every user had
 * then, so nothing that worked stops working; the next save writes the
 * permissions down.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/brk.h"

#define USERS_FILE "users.json"

static char path[4096]; /* empty: nothing is saved (no data directory given) */
static pthread_mutex_t save_lock = PTHREAD_MUTEX_INITIALIZER;

int brk_users_load(const char *data_dir, const char *anonymous_user, char *err, size_t len)
{
    snprintf(path, sizeof path, "%s/%s", data_dir, USERS_FILE);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (!doc) {
        if (access(path, F_OK) != 0)
            return 0; /* users never changed here: the configuration's apply */
        snprintf(err, len, "%s: line %d: %s", path, jerr.line, jerr.text);
        return -EINVAL;
    }
    json_t *wrap = json_is_array(doc) ? json_pack("{s:O}", "users", doc) : json_incref(doc);
    json_decref(doc);
    brk_user *list = NULL;
    size_t n = 0;
    char why[400];
    int rc = wrap ? brk_users_parse(wrap, &list, &n, why, sizeof why) : -ENOMEM;
    if (rc < 0) {
        json_decref(wrap);
        snprintf(err, len, "%s: %s", path, rc == -ENOMEM ? "out of memory" : why);
        return rc;
    }
    brk_permission *perms = NULL;
    size_t nperms = 0;
    bool present = false;
    if ((rc = brk_perms_parse(wrap, &perms, &nperms, &present, why, sizeof why)) == 0)
        for (size_t i = 0; i < nperms && rc == 0; i++) {
            bool known = false;
            for (size_t j = 0; j < n && !known; j++)
                known = !strcmp(list[j].name, perms[i].user);
            if (!known || !brk_vhost_exists(perms[i].vhost))
                rc = rt_bad(why, sizeof why, "permissions[%zu]: no %s '%s'", i, known ? "vhost" : "user",
                            known ? perms[i].vhost : perms[i].user);
        }
    json_decref(wrap);
    if (rc < 0) {
        free(list);
        free(perms);
        snprintf(err, len, "%s: %s", path, rc == -ENOMEM ? "out of memory" : why);
        return rc;
    }
    rc = brk_users_set(list, n, anonymous_user); /* full access to "/" for each: the migration */
    if (rc == 0 && present)
        rc = brk_perms_replace(perms, nperms);
    else if (rc == 0)
        sv_log(SV_LOG_INFO,
               "%s has no permissions (written before they existed): each of its users gets full "
               "access to the vhost /",
               path);
    free(list);
    free(perms);
    return rc < 0 ? rc : 1;
}

int brk_users_save(void)
{
    if (!path[0])
        return 0;
    pthread_mutex_lock(&save_lock); /* exports and writes in turn: the last write holds the last change */
    json_t *users = brk_users_export(), *perms = users ? brk_perms_export() : NULL;
    json_t *doc = perms ? json_pack("{s:o, s:o}", "users", users, "permissions", perms) : NULL;
    if (!perms)
        json_decref(users);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    json_decref(doc);
    int rc = text ? sv_file_replace(path, text, strlen(text)) : -ENOMEM;
    pthread_mutex_unlock(&save_lock);
    free(text);
    if (rc < 0)
        sv_log(SV_LOG_ERROR, "cannot save the users in %s: %s", path, strerror(-rc));
    return rc;
}
