# engine_bench: the engine's range-test throughput (see docs/engine.md and
# bench/run_engine_bench.sh). Included by bench/CMakeLists.txt when the
# engine is built; needs no Google Benchmark.
find_package(nlohmann_json REQUIRED)
add_executable(engine_bench ${CMAKE_CURRENT_LIST_DIR}/engine_bench.cc)
target_link_libraries(engine_bench PRIVATE lrtune_engine
                      nlohmann_json::nlohmann_json)
lrtune_target_warnings(engine_bench)

# quality_study: the advice-quality study (bench/quality/, run.sh there).
add_executable(quality_study ${CMAKE_CURRENT_LIST_DIR}/quality/quality_study.cc)
target_link_libraries(quality_study PRIVATE lrtune_engine lrtune_engine_spec
                      nlohmann_json::nlohmann_json)
lrtune_target_warnings(quality_study)
