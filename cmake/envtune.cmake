# Helpers shared by every component's CMakeLists.txt.

# envtune_library(NAME SRCS ... DEPS ...): a static library with the repository root on its
# include path, so headers are included as "envserver/pyvalue.h".
function(envtune_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  if(NOT ARG_SRCS)
    # A component with no sources yet is an interface library, so the tree always configures.
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/proto)
    target_link_libraries(${name} INTERFACE ${ARG_DEPS})
    return()
  endif()
  add_library(${name} STATIC ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/proto)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  target_compile_options(${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
endfunction()

# envtune_test(NAME SRCS ... DEPS ... [LABELS ...] [TIMEOUT s]): a GoogleTest executable
# registered with ctest. Tests run from the build tree; ENVTUNE_SHARED_DIR points at ../shared
# (the reference data beside the checkout) and ENVTUNE_SOURCE_DIR at the repository.
function(envtune_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  add_test(NAME ${name} COMMAND ${name})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  # TORCH_FR_BUFFER_SIZE=0: tests run several c10d ranks as threads of one process, and
  # PyTorch 2.11's collective flight recorder inserts each new process group into a shared map
  # before it takes its mutex (FlightRecorderDetail.hpp, recordWithResetEnabled), which crashed
  # learner_distributed_test about once in 25 runs. The product runs one rank per process and
  # issues its collectives from the training thread.
  set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "ENVTUNE_SHARED_DIR=${ENVTUNE_SHARED_DIR};ENVTUNE_SOURCE_DIR=${PROJECT_SOURCE_DIR};ENVTUNE_BINARY_DIR=${PROJECT_BINARY_DIR};TORCH_FR_BUFFER_SIZE=0")
  if(ARG_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()

set(ENVTUNE_SHARED_DIR "${PROJECT_SOURCE_DIR}/../shared" CACHE PATH
    "Reference data (BFCL, golden fixtures) used by tests only")
