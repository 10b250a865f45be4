# bench_hnsw: Sextant's HNSW index beside hnswlib on Fashion-MNIST (bench/HNSW.md).
# Included from bench/CMakeLists.txt. Needs hnswlib's header (Debian: libhnswlib-dev),
# zlib (zlib1g-dev) and the Fashion-MNIST idx files (Debian: dataset-fashion-mnist,
# or -DSX_FASHION_MNIST_DIR=...); without any of them the target is skipped.
#
# hnswlib picks its SIMD distance code at compile time (__AVX__, __AVX512F__), while
# Sextant dispatches at run time, so the benchmark is compiled with -march=native
# (when the compiler accepts it) to give hnswlib the same AVX-512/AVX2 path Sextant
# uses on this machine. Configure with -DCMAKE_BUILD_TYPE=Release.

set(SX_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist" CACHE PATH
    "Directory holding Fashion-MNIST's train-/t10k-images-idx3-ubyte(.gz) files")

find_path(HNSWLIB_INCLUDE_DIR hnswlib/hnswlib.h)
find_package(ZLIB QUIET)

set(_sx_fmnist_ok TRUE)
foreach(_f train-images-idx3-ubyte t10k-images-idx3-ubyte)
  if(NOT EXISTS "${SX_FASHION_MNIST_DIR}/${_f}.gz" AND NOT EXISTS "${SX_FASHION_MNIST_DIR}/${_f}")
    set(_sx_fmnist_ok FALSE)
  endif()
endforeach()

if(NOT HNSWLIB_INCLUDE_DIR)
  message(STATUS "hnswlib header not found (install libhnswlib-dev): skipping bench_hnsw")
elseif(NOT ZLIB_FOUND)
  message(STATUS "zlib not found (install zlib1g-dev): skipping bench_hnsw")
elseif(NOT _sx_fmnist_ok)
  message(STATUS "Fashion-MNIST not found in ${SX_FASHION_MNIST_DIR} (install dataset-fashion-mnist "
                 "or set SX_FASHION_MNIST_DIR): skipping bench_hnsw")
else()
  include(CheckCXXCompilerFlag)
  check_cxx_compiler_flag(-march=native SX_CXX_MARCH_NATIVE)
  add_executable(bench_hnsw ${CMAKE_CURRENT_LIST_DIR}/bench_hnsw.cc)
  # SYSTEM: hnswlib's header is not clean under -Wall -Wextra -Werror.
  target_include_directories(bench_hnsw SYSTEM PRIVATE ${HNSWLIB_INCLUDE_DIR})
  target_compile_definitions(bench_hnsw PRIVATE SX_FMNIST_DIR="${SX_FASHION_MNIST_DIR}")
  if(SX_CXX_MARCH_NATIVE)
    target_compile_options(bench_hnsw PRIVATE -march=native)
  else()
    message(STATUS "bench_hnsw: the compiler rejects -march=native; hnswlib gets only the SIMD of the default target")
  endif()
  target_link_libraries(bench_hnsw PRIVATE sextant ZLIB::ZLIB Threads::Threads)
  if(NOT CMAKE_BUILD_TYPE STREQUAL "Release")
    message(STATUS "bench_hnsw: configure with -DCMAKE_BUILD_TYPE=Release for meaningful figures")
  endif()
endif()
