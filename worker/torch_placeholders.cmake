# Builds the placeholder libraries for LibTorch's unused dependencies
# (worker/torch_placeholders.h says why and how they are used): one empty
# shared library per DT_NEEDED entry of TORCH_LIBRARY that belongs to the
# families below, named and carrying the soname of that entry, in OUT_DIR.
# With BROKEN_DIR it also writes there a placeholder that must not work (it
# stands in for libc10, which LibTorch does use), for the loader's fallback
# test.
#
#   cmake -DREADELF=readelf -DCXX=c++ -DSOURCE=worker/torch_placeholder.cc
#         -DTORCH_LIBRARY=/usr/lib/.../libtorch_cpu.so -DOUT_DIR=dir
#         [-DBROKEN_DIR=dir] -P worker/torch_placeholders.cmake
#
# The families: the libraries of Caffe2's image and video operators (OpenCV,
# FFmpeg) and database readers (ZeroMQ, LMDB, LevelDB, Snappy). Debian's
# libtorch_cpu 1.13 lists all of them and binds a symbol from none; a
# LibTorch that does not list them gets no placeholder.
set(families "opencv_[a-z0-9_]+|avcodec|avformat|avutil|swscale|swresample|zmq|lmdb|leveldb|snappy")

foreach(var READELF CXX SOURCE TORCH_LIBRARY OUT_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "torch_placeholders.cmake: -D${var}=... is required")
  endif()
endforeach()

execute_process(COMMAND ${READELF} -d ${TORCH_LIBRARY}
  OUTPUT_VARIABLE dynamic RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${READELF} -d ${TORCH_LIBRARY} failed")
endif()
string(REGEX MATCHALL "\\(NEEDED\\)[^[]*\\[[^]]+\\]" entries "${dynamic}")
set(needed "")
foreach(entry IN LISTS entries)
  string(REGEX REPLACE ".*\\[([^]]+)\\]" "\\1" name "${entry}")
  list(APPEND needed ${name})
endforeach()

function(build_placeholder dir soname)
  execute_process(COMMAND ${CXX} -shared -nostdlib -fPIC
      -Wl,-soname,${soname} -o ${dir}/${soname} ${SOURCE}
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "building the placeholder ${dir}/${soname} failed")
  endif()
endfunction()

file(REMOVE_RECURSE ${OUT_DIR})
file(MAKE_DIRECTORY ${OUT_DIR})
set(made 0)
foreach(name IN LISTS needed)
  if(name MATCHES "^lib(${families})\\.so")
    build_placeholder(${OUT_DIR} ${name})
    math(EXPR made "${made} + 1")
  endif()
endforeach()
message(STATUS "LibTorch placeholders: ${made} in ${OUT_DIR}")

if(DEFINED BROKEN_DIR)
  file(REMOVE_RECURSE ${BROKEN_DIR})
  file(MAKE_DIRECTORY ${BROKEN_DIR})
  foreach(name IN LISTS needed)
    if(name MATCHES "^libc10\\.so")
      build_placeholder(${BROKEN_DIR} ${name})
    endif()
  endforeach()
endif()
