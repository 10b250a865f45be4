# The addon sextant.node: the SWIG-generated src/sextant_wrap.cxx (from
# bindings/sextant.i + node_typemaps.i, committed so that installing needs no SWIG)
# plus the whole core, compiled here with the flags of the CMake build
# (C11, _GNU_SOURCE, hidden visibility, optimized with NDEBUG as a Release build;
# the SIMD kernels carry their own target attributes and pick AVX2 / AVX-512 at run
# time, so no -m flags are needed). Jansson comes from the system (libjansson-dev).
{
  "targets": [
    {
      "target_name": "sextant",
      "sources": [
        "src/sextant_wrap.cxx",
        "<!@(node -p \"require('./scripts/core_sources.js').join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "../../core/include",
        "../../core/src"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "_GNU_SOURCE",
        "NDEBUG"
      ],
      "cflags": ["-fvisibility=hidden", "-O3", "-Wall", "-Wextra", "-Wshadow", "-Wno-unused-parameter"],
      "cflags!": ["-O2"],
      "cflags_c": ["-std=c11"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wno-shadow", "-Wno-cast-function-type", "-Wno-missing-field-initializers"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++1y", "-std=gnu++20"],
      "libraries": ["-ljansson", "-lpthread", "-lm"],
      "ldflags": ["-Wl,--exclude-libs,ALL"]
    }
  ]
}
