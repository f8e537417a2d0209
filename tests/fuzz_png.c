/* tests/fuzz_png.c - libFuzzer harness for png.c + the image_io.c paths fed by
 * it: PNG decoding (chunks, CRC, inflate, filters, Adam7, every mode),
 * Pillow-mode -> RGB conversion, PNG re-encoding (must round-trip exactly),
 * a small resize, and raw inflate of the input with a size from its first
 * bytes, EXIF orientation parsing and the PPM reader. Any crash, sanitizer
 * report or round-trip mismatch is a finding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image_io.h"
#include "seedx.h"

/* Rewrites every chunk CRC so mutations reach inflate, the filters and the
 * unpackers instead of stopping at the CRC check. */
static uint8_t *fix_crcs(const uint8_t *data, size_t size) {
    uint8_t *b = malloc(size ? size : 1);
    if (!b) return NULL;
    memcpy(b, data, size);
    size_t p = 8;
    while (size >= 12 && p <= size - 12) {
        size_t len = (size_t)b[p] << 24 | (size_t)b[p + 1] << 16 | (size_t)b[p + 2] << 8 | b[p + 3];
        if (len > size - p - 12) break;
        uint32_t c = sx_crc32(0, b + p + 4, len + 4);
        b[p + 8 + len] = (uint8_t)(c >> 24);
        b[p + 9 + len] = (uint8_t)(c >> 16);
        b[p + 10 + len] = (uint8_t)(c >> 8);
        b[p + 11 + len] = (uint8_t)c;
        p += 12 + len;
    }
    return b;
}

static int one_png(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *fixed = fix_crcs(data, size);
    if (fixed) {
        one_png(fixed, size);
        free(fixed);
    }
    /* raw zlib with an output size taken from the first two bytes */
    if (size >= 2) {
        size_t out_n = (size_t)data[0] << 8 | data[1];
        uint8_t *o = malloc(out_n + 1);
        if (o) {
            (void)sx_zlib_decompress(data + 2, size - 2, o, out_n, "fuzz.zlib");
            free(o);
        }
    }
    /* EXIF orientation parsing (JPEG APP1 / PNG eXIf) and the PPM reader */
    int o = sx_exif_orientation(data, size);
    if (o < 1 || o > 8) abort();
    if (size >= 2 && data[0] == 'P' && (data[1] == '5' || data[1] == '6')) {
        sx_image im;
        if (sx_image_decode_rgb(data, size, "fuzz.ppm", &im) == 0) sx_image_free(&im);
    }
    return one_png(data, size);
}

static int one_png(const uint8_t *data, size_t size) {
    /* PNG: the fuzzer mostly mutates valid files, so the signature is usually intact */
    sx_native_image nat;
    if (sx_png_decode(data, size, "fuzz.png", &nat) != 0) return 0;
    sx_image rgb;
    if (sx_native_to_rgb(&nat, &rgb) == 0) {
        if ((int64_t)rgb.w * rgb.h <= 1 << 16) {
            uint8_t *png;
            size_t n;
            if (sx_png_encode(&rgb, &png, &n) == 0) {
                sx_image back;
                if (sx_image_decode_rgb(png, n, "fuzz-roundtrip.png", &back) != 0) abort();
                if (back.w != rgb.w || back.h != rgb.h ||
                    memcmp(back.data, rgb.data, (size_t)rgb.w * rgb.h * 3))
                    abort();
                sx_image_free(&back);
                free(png);
            }
            sx_image r;
            int tw = 1 + (int)(data[size - 1] % 61), th = 1 + (int)(data[size - 2] % 53);
            if (sx_image_resize(&rgb, tw, th, (size & 1) ? SX_RESIZE_BICUBIC : SX_RESIZE_BILINEAR, &r) == 0)
                sx_image_free(&r);
        }
        sx_image_free(&rgb);
    }
    sx_native_free(&nat);
    return 0;
}
