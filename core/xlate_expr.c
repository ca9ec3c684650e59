/* SPDX-License-Identifier: Apache-2.0 */
/* Kong expression router (ATC) text: quoting and joining of matchers, as KIC's atc package. */
#include "xlate_int.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

char *xexpr_quote(const char *s)
{
    Buf b = BUF_INIT;
    buf_putc(&b, '"');
    for (; *s; s++) {
        switch (*s) {
        case '\\':
            buf_puts(&b, "\\\\");
            break;
        case '"':
            buf_puts(&b, "\\\"");
            break;
        case '\n':
            buf_puts(&b, "\\n");
            break;
        case '\r':
            buf_puts(&b, "\\r");
            break;
        case '\t':
            buf_puts(&b, "\\t");
            break;
        default:
            buf_putc(&b, *s);
        }
    }
    buf_putc(&b, '"');
    return buf_take(&b);
}

char *xexpr_join(json_t *parts, const char *op)
{
    size_t n = json_array_size(parts);
    if (n == 0)
        return strdup("");
    if (n == 1)
        return strdup(json_string_value(json_array_get(parts, 0)));
    Buf b = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_printf(&b, " %s ", op);
        buf_printf(&b, "(%s)", json_string_value(json_array_get(parts, i)));
    }
    return buf_take(&b);
}
