# Install rules for the service and the Debian packages (cpack -G DEB), in three components:
#
#   daemon   -> workflowd        workflowd, workflowctl, the config (a conffile), the systemd
#                                unit, sysusers.d and tmpfiles.d, the empty plugin directory,
#                                the man pages. No example plugin: those are for reading.
#   runtime  -> libworkflow1     libworkflow.so.1, which the daemon and every plugin link. Its
#                                own package, named after the soname as Debian does, so that
#                                a plugin author's machine needs no daemon and a future
#                                libworkflow2 can be installed beside it.
#   dev      -> libworkflow-dev  the headers, the libworkflow.so link, the static test runtime
#                                libworkflow_testing.a and the CMake package.
#
# The SDK's rules (runtime, dev) are in sdk/CMakeLists.txt. Packages are built for
# CMAKE_INSTALL_PREFIX=/usr (scripts/check-packages does so): the config goes to
# ${CMAKE_INSTALL_FULL_SYSCONFDIR}, which is /etc for that prefix.

set(WORKFLOW_PACKAGING_DIR ${CMAKE_CURRENT_LIST_DIR})
set(WORKFLOW_DEBIAN_DIR ${WORKFLOW_PACKAGING_DIR}/debian)

install(TARGETS workflowd workflowctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT daemon)
install(FILES config/workflowd.yaml
  DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/workflowd COMPONENT daemon)
install(FILES ${WORKFLOW_PACKAGING_DIR}/workflowd.service
  DESTINATION lib/systemd/system COMPONENT daemon)
install(FILES ${WORKFLOW_PACKAGING_DIR}/sysusers.d/workflowd.conf
  DESTINATION lib/sysusers.d COMPONENT daemon)
install(FILES ${WORKFLOW_PACKAGING_DIR}/tmpfiles.d/workflowd.conf
  DESTINATION lib/tmpfiles.d COMPONENT daemon)
# The plugin directory of the default config, empty: operators drop their plugins here.
install(DIRECTORY DESTINATION lib/workflowd/plugins COMPONENT daemon)

# Man pages and changelogs are installed compressed, as Debian wants them.
find_program(WORKFLOW_GZIP gzip REQUIRED)
set(WORKFLOW_PACKAGING_OUT ${PROJECT_BINARY_DIR}/packaging)
set(compressed)
foreach(source man/workflowd.8 man/workflowctl.1 debian/changelog)
  get_filename_component(name ${source} NAME)
  set(output ${WORKFLOW_PACKAGING_OUT}/${name}.gz)
  add_custom_command(OUTPUT ${output}
    COMMAND ${WORKFLOW_GZIP} -9 -n -c ${WORKFLOW_PACKAGING_DIR}/${source} > ${output}
    DEPENDS ${WORKFLOW_PACKAGING_DIR}/${source}
    COMMENT "Compressing ${source}")
  list(APPEND compressed ${output})
endforeach()
add_custom_target(workflow_packaging_docs ALL DEPENDS ${compressed})
install(FILES ${WORKFLOW_PACKAGING_OUT}/workflowd.8.gz
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT daemon)
install(FILES ${WORKFLOW_PACKAGING_OUT}/workflowctl.1.gz
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT daemon)

# The package of each component; every package carries its copyright and changelog.
set(workflow_components daemon runtime dev)
set(workflow_packages workflowd libworkflow1 libworkflow-dev)
foreach(component package IN ZIP_LISTS workflow_components workflow_packages)
  string(TOUPPER ${component} COMPONENT)
  set(CPACK_DEBIAN_${COMPONENT}_PACKAGE_NAME ${package})
  install(FILES ${WORKFLOW_DEBIAN_DIR}/copyright ${WORKFLOW_PACKAGING_OUT}/changelog.gz
    DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${package} COMPONENT ${component})
endforeach()

# CPack: one .deb per component.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME workflowd)
set(CPACK_PACKAGE_VENDOR "the workflowd authors")
set(CPACK_PACKAGE_CONTACT "Seed 29b1ebd7 maintainers <maintainers@users.noreply.r-seed-29b1ebd7.example>")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL ${workflow_components})
set(CPACK_DEB_COMPONENT_INSTALL ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
# Runtime dependencies from the ELF files; libworkflow.so.1 is found in the build tree and
# its package is named below.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${PROJECT_BINARY_DIR}/sdk)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# A shlibs file for the package that ships a shared library (libworkflow1): what is built
# against libworkflow.so.1 needs libworkflow1 of this version or later.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(workflow_exact_version "(= ${PROJECT_VERSION})")

set(CPACK_DEBIAN_DAEMON_PACKAGE_SECTION net)
set(CPACK_DEBIAN_DAEMON_PACKAGE_DEPENDS "libworkflow1 ${workflow_exact_version}")
set(CPACK_DEBIAN_DAEMON_PACKAGE_RECOMMENDS "systemd")
set(CPACK_DEBIAN_DAEMON_PACKAGE_SUGGESTS "rabbitmq-server, libworkflow-dev")
set(CPACK_DEBIAN_DAEMON_PACKAGE_CONTROL_EXTRA
  ${WORKFLOW_DEBIAN_DIR}/workflowd/conffiles
  ${WORKFLOW_DEBIAN_DIR}/workflowd/postinst
  ${WORKFLOW_DEBIAN_DIR}/workflowd/prerm
  ${WORKFLOW_DEBIAN_DIR}/workflowd/postrm)
set(CPACK_COMPONENT_DAEMON_DESCRIPTION "RabbitMQ workflow daemon that runs C++ plugins
workflowd runs message-driven workflows written in C++. Each stage of a
workflow is a C++ function bound to a RabbitMQ queue; workflows are compiled
as plugins and loaded from /usr/lib/workflowd/plugins.

This package holds the daemon, its systemd service, its default configuration
in /etc/workflowd and the workflowctl client.")

set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA ${WORKFLOW_DEBIAN_DIR}/libworkflow1/triggers)
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION "workflowd plugin SDK library
libworkflow holds the API that workflowd plugins call (RegisterHandler, send,
FlushMessages, ...) and forwards it to the program that hosts them.

This package holds the shared library, used by workflowd and by every plugin.")

set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libworkflow1 ${workflow_exact_version}, rapidjson-dev, libboost-dev (>= 1.74)")
# catch2: the test framework of the out-of-tree example's test; the test runtime needs none.
set(CPACK_DEBIAN_DEV_PACKAGE_SUGGESTS "cmake (>= 3.25), catch2")
set(CPACK_COMPONENT_DEV_DESCRIPTION "workflowd plugin SDK, development files
libworkflow holds the API that workflowd plugins call.

This package holds the headers (<workflow/workflow.hpp>), the test runtime
(<workflow/testing.hpp>, a static library that runs handlers and plugins
without a broker) and the CMake package: find_package(Workflow) gives the
Workflow::sdk and Workflow::testing targets and the workflow_add_plugin()
function that builds a plugin out of tree.")

include(CPack)
