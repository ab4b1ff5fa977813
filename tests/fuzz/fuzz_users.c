/* fuzz_users.c — feeds a JSON document to the users reader
 * (broker/users_json.c): the "users" of POST /api/definitions and of the
 * data directory's users.json, and a PUT /api/users/NAME body.
 *
 * Input: a selector byte (document, or one user's body with the name from
 * the URL), then the JSON. Checked: a refusal says why and leaves nothing
 * allocated; an accepted user has a name, a valid salted hash and only
 * known tags, and written back in the export's form (name, password_hash,
 * tags, loopback_only) reads to the same user.
 */
#include <jansson.h>
#include <string.h>

#include "broker/brk.h"
#include "tests/fuzz/fuzz.h"

static void round_trip(const brk_user *u)
{
    FUZZ_CHECK(u->name[0] && strlen(u->name) < sizeof u->name);
    FUZZ_CHECK(brk_hash_valid(u->hash));
    json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "name", u->name, "password_hash", u->hash, "tags", u->tags,
                          "loopback_only", u->loopback_only);
    if (!o)
        return; /* a name that is not UTF-8 cannot be written back as JSON */
    brk_user again;
    char err[256] = "";
    int rc = brk_user_from_json(o, NULL, &again, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "written-back user refused: %s\n", err);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(strcmp(again.name, u->name) == 0 && strcmp(again.hash, u->hash) == 0);
    FUZZ_CHECK(strcmp(again.tags, u->tags) == 0 && again.loopback_only == u->loopback_only);
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    json_error_t je;
    json_t *doc = json_loadb((const char *)data + 1, size - 1, 0, &je);
    if (!doc)
        return 0;
    char err[256] = "";
    if (data[0] & 1) {
        brk_user u;
        if (brk_user_from_json(doc, "from-the-url", &u, err, sizeof err) == 0)
            round_trip(&u);
        else
            FUZZ_CHECK(err[0]);
    } else {
        brk_user *list = NULL;
        size_t n = 99;
        if (brk_users_parse(doc, &list, &n, err, sizeof err) == 0) {
            for (size_t i = 0; i < n; i++)
                round_trip(&list[i]);
        } else {
            FUZZ_CHECK(err[0] && !list);
        }
        free(list);
    }
    json_decref(doc);
    return 0;
}
