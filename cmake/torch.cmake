# LibTorch 2.x, from the PyTorch wheel (scripts/install-deps puts it in .venv).
#
# Where it comes from, first match wins: -DTorch_DIR=... or a CMAKE_PREFIX_PATH that holds
# TorchConfig.cmake; otherwise `torch.utils.cmake_prefix_path` of ENVTUNE_PYTHON (default: the
# project's .venv, else python3 on PATH). A CUDA wheel needs the CUDA toolkit (nvcc) to configure.
#
# Results, used by the components:
#   envtune::torch  - interface target: LibTorch (with libtorch_cuda when the wheel has CUDA)
#                     and ENVTUNE_WITH_CUDA=0/1.
#   envtune::c10d   - interface target for the learner's collectives: Gloo always, and
#                     ENVTUNE_WITH_NCCL=1 with NCCL's header when LibTorch has CUDA and NCCL.
#   ENVTUNE_WITH_CUDA, ENVTUNE_WITH_NCCL, ENVTUNE_TORCH_VERSION, ENVTUNE_TORCH_LIB_DIR.

set(ENVTUNE_PYTHON "" CACHE FILEPATH "python whose torch wheel provides LibTorch (default: .venv)")
set(ENVTUNE_NCCL "AUTO" CACHE STRING "NCCL backend: AUTO (when LibTorch has CUDA), ON or OFF")
set_property(CACHE ENVTUNE_NCCL PROPERTY STRINGS AUTO ON OFF)

# envtune compiles no CUDA sources; naming the architectures keeps a CUDA TorchConfig from
# probing for installed GPUs (a try_run that fails on machines without one).
if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0" CACHE STRING "CUDA architectures (envtune has no CUDA sources)")
endif()
find_package(Torch 2.0 QUIET CONFIG)
if(NOT Torch_FOUND)
  set(python "${ENVTUNE_PYTHON}")
  if(NOT python)
    if(EXISTS "${PROJECT_SOURCE_DIR}/.venv/bin/python")
      set(python "${PROJECT_SOURCE_DIR}/.venv/bin/python")
    else()
      find_program(python NAMES python3 python)
    endif()
  endif()
  execute_process(
    COMMAND "${python}" -W ignore -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
    ERROR_VARIABLE torch_error RESULT_VARIABLE torch_rc)
  if(NOT torch_rc EQUAL 0)
    message(FATAL_ERROR
      "envtune: no LibTorch. Run scripts/install-deps (PyTorch 2.x wheel into .venv), or pass "
      "-DTorch_DIR=<libtorch>/share/cmake/Torch or -DENVTUNE_PYTHON=<python with torch>.\n"
      "'${python}' said: ${torch_error}")
  endif()
  list(APPEND CMAKE_PREFIX_PATH "${torch_prefix}")
  # A CUDA wheel's TorchConfig looks for the toolkit; nvcc may be off PATH in a CI shell.
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CUDA_TOOLKIT_ROOT_DIR /usr/local/cuda CACHE PATH "CUDA toolkit")
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc CACHE FILEPATH "nvcc")
  endif()
  find_package(Torch 2.0 REQUIRED CONFIG)
endif()
if(Torch_VERSION VERSION_GREATER_EQUAL 3.0)
  message(FATAL_ERROR "envtune supports the LibTorch 2.x line; found ${Torch_VERSION}")
endif()
set(ENVTUNE_TORCH_VERSION "${Torch_VERSION}")
get_filename_component(ENVTUNE_TORCH_LIB_DIR "${TORCH_LIBRARY}" DIRECTORY)
get_filename_component(torch_root "${ENVTUNE_TORCH_LIB_DIR}" DIRECTORY)

# The wheel's include/ also ships protobuf 3.13 headers (google/protobuf, for its bundled ONNX).
# As a system include directory it would shadow Debian's protobuf, which our generated code and
# gRPC are built against. Components see a copy of that directory made of links to every entry
# except google/ (protobuf symbols inside libtorch are onnx_torch::-namespaced; the two
# coexist in one process: tests/common/torch_grpc_coexist_test.cc).
set(filtered "${PROJECT_BINARY_DIR}/torch-include")
file(GLOB entries RELATIVE "${torch_root}/include" "${torch_root}/include/*")
file(MAKE_DIRECTORY "${filtered}")
foreach(entry ${entries})
  if(NOT entry STREQUAL "google" AND NOT EXISTS "${filtered}/${entry}")
    file(CREATE_LINK "${torch_root}/include/${entry}" "${filtered}/${entry}" SYMBOLIC)
  endif()
endforeach()
# Every imported target of the wheel (torch, torch_cpu, c10, the CUDA ones) carries that
# directory.
get_property(imported DIRECTORY PROPERTY IMPORTED_TARGETS)
foreach(target ${imported})
  get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
  if(NOT dirs)
    continue()
  endif()
  list(TRANSFORM dirs REPLACE "^${torch_root}/include$" "${filtered}")
  set_property(TARGET ${target} PROPERTY INTERFACE_INCLUDE_DIRECTORIES "${dirs}")
endforeach()

set(ENVTUNE_WITH_CUDA OFF)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(ENVTUNE_WITH_CUDA ON)
endif()

add_library(envtune_torch INTERFACE)
add_library(envtune::torch ALIAS envtune_torch)
target_link_libraries(envtune_torch INTERFACE ${TORCH_LIBRARIES})
target_compile_definitions(envtune_torch INTERFACE ENVTUNE_WITH_CUDA=$<BOOL:${ENVTUNE_WITH_CUDA}>)

# Collectives. ProcessGroupGloo.hpp includes gloo's headers, which the wheel does not ship:
# Debian's libgloo-dev provides them (only type names are used; libtorch has Gloo inside).
find_path(ENVTUNE_GLOO_INCLUDE_DIR gloo/context.h)
if(NOT ENVTUNE_GLOO_INCLUDE_DIR)
  message(FATAL_ERROR "envtune: gloo headers not found (Debian: libgloo-dev; scripts/install-deps)")
endif()
set(ENVTUNE_WITH_NCCL OFF)
if(NOT ENVTUNE_NCCL STREQUAL "OFF")
  find_path(ENVTUNE_NCCL_INCLUDE_DIR nccl.h
    HINTS "${torch_root}/../nvidia/nccl/include" ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  if(ENVTUNE_WITH_CUDA AND ENVTUNE_NCCL_INCLUDE_DIR)
    set(ENVTUNE_WITH_NCCL ON)
  elseif(ENVTUNE_NCCL STREQUAL "ON")
    message(FATAL_ERROR "envtune: ENVTUNE_NCCL=ON needs a CUDA LibTorch (CUDA: ${ENVTUNE_WITH_CUDA}) "
                        "and nccl.h (found: '${ENVTUNE_NCCL_INCLUDE_DIR}')")
  endif()
endif()
add_library(envtune_c10d INTERFACE)
add_library(envtune::c10d ALIAS envtune_c10d)
target_link_libraries(envtune_c10d INTERFACE envtune_torch)
target_include_directories(envtune_c10d SYSTEM INTERFACE "${ENVTUNE_GLOO_INCLUDE_DIR}")
target_compile_definitions(envtune_c10d INTERFACE USE_C10D_GLOO=1)
if(ENVTUNE_WITH_NCCL)
  target_include_directories(envtune_c10d SYSTEM INTERFACE "${ENVTUNE_NCCL_INCLUDE_DIR}")
  target_compile_definitions(envtune_c10d INTERFACE USE_C10D_NCCL=1 ENVTUNE_WITH_NCCL=1)
endif()

message(STATUS "envtune: LibTorch ${ENVTUNE_TORCH_VERSION} (${torch_root}), "
               "CUDA: ${ENVTUNE_WITH_CUDA}, NCCL: ${ENVTUNE_WITH_NCCL}")
