/* static.c — the dashboard's files, served from the broker's own binary
 * (see www.S): no build step, no files to install beside it. */
#include <string.h>

#include "admin/adm_internal.h"

extern const char adm__www_index_html[], adm__www_index_html_end[];
extern const char adm__www_app_js[], adm__www_app_js_end[];
extern const char adm__www_style_css[], adm__www_style_css_end[];

static const struct file {
    const char *path;
    const char *start, *end;
    const char *type;
} files[] = {
    {"/", adm__www_index_html, adm__www_index_html_end, "text/html; charset=utf-8"},
    {"/index.html", adm__www_index_html, adm__www_index_html_end, "text/html; charset=utf-8"},
    {"/app.js", adm__www_app_js, adm__www_app_js_end, "text/javascript; charset=utf-8"},
    {"/style.css", adm__www_style_css, adm__www_style_css_end, "text/css; charset=utf-8"},
};

bool adm__static(const char *path, adm_resp *r)
{
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (!strcmp(path, files[i].path)) {
            r->status = 200;
            r->static_text = files[i].start;
            r->text_len = (size_t)(files[i].end - files[i].start);
            r->type = files[i].type;
            return true;
        }
    return false;
}
