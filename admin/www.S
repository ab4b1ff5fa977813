/* www.S — the dashboard's files (admin/www/), built into the broker so it
 * serves them wherever it is installed and whatever its working directory.
 * Each file is a symbol with an end symbol after it; static.c lists them. */
#define FILE(sym, path)          \
    .section .rodata;            \
    .balign 16;                  \
    .global sym;                 \
    sym:;                        \
    .incbin path;                \
    .global sym##_end;           \
    sym##_end:;                  \
    .byte 0

FILE(adm__www_index_html, "admin/www/index.html")
FILE(adm__www_app_js, "admin/www/app.js")
FILE(adm__www_style_css, "admin/www/style.css")

.section .note.GNU-stack, "", @progbits
