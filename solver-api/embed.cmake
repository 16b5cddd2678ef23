# Writes a C file holding a file's bytes as an array, at build time:
#   cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake
# It defines `const unsigned char NAME[]` (the bytes and one NUL after
# them, so that it reads as a string too) and `const size_t NAME_len`.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# One line per 64 bytes keeps the generated file readable by compilers' tools.
string(REGEX REPLACE "((0x..,){64})" "\\1\n" bytes "${bytes}")
get_filename_component(src "${IN}" NAME)
file(WRITE "${OUT}.tmp"
  "/* ${src} embedded by embed.cmake at build time: edit ${src}, not this. */\n"
  "#include <stddef.h>\n"
  "const unsigned char ${NAME}[] = {\n${bytes}0};\n"
  "const size_t ${NAME}_len = ${len};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
