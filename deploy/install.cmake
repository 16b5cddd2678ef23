# Run by `cmake --install` and cpack (deploy/CMakeLists.txt sets the
# EDGE_* variables before it). Paths are made under $ENV{DESTDIR}.
set(root "$ENV{DESTDIR}")

# The example config, never over one an operator wrote.
set(conf "${root}${EDGE_SYSCONFDIR}/acme-edge/acme-edge.conf")
if(EXISTS "${conf}")
  message(STATUS "Kept (exists): ${conf}")
else()
  # file(INSTALL) puts DESTDIR in front by itself.
  file(INSTALL "${EDGE_DEPLOY}/acme-edge.conf"
       DESTINATION "${EDGE_SYSCONFDIR}/acme-edge"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()

# The unit, pointing at the installed binary; the comment on installing by
# hand does not apply to an installed unit.
file(READ "${EDGE_DEPLOY}/acme-edge.service" unit)
string(REGEX REPLACE "# Install:[^\n]*\n(#    [^\n]*\n)*" "" unit "${unit}")
string(REPLACE "/usr/local/bin/acme-edge" "${CMAKE_INSTALL_PREFIX}/bin/acme-edge"
       unit "${unit}")
set(unit_dir "${root}${EDGE_UNITDIR}")
file(MAKE_DIRECTORY "${unit_dir}")
file(WRITE "${unit_dir}/acme-edge.service" "${unit}")
message(STATUS "Installing: ${unit_dir}/acme-edge.service")

# Debian's changelog (the package is native: the version is acme-edge's),
# compressed reproducibly (no name, no time stamp).
set(doc "${root}${CMAKE_INSTALL_PREFIX}/${EDGE_DOCDIR}")
file(MAKE_DIRECTORY "${doc}")
file(WRITE "${doc}/changelog"
"acme-edge (${EDGE_VERSION}) unstable; urgency=medium

  * acme-edge ${EDGE_VERSION}, packaged from its source tree with CPack.

 -- ${EDGE_MAINTAINER}  ${EDGE_RELEASE_DATE}
")
execute_process(COMMAND gzip -9nf "${doc}/changelog" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gzip ${doc}/changelog failed: ${rc}")
endif()
message(STATUS "Installing: ${doc}/changelog.gz")

# The manual page, compressed the same way.
set(man "${root}${CMAKE_INSTALL_PREFIX}/${EDGE_MANDIR}/man1")
file(MAKE_DIRECTORY "${man}")
execute_process(COMMAND gzip -9n -c "${EDGE_DEPLOY}/acme-edge.1"
                OUTPUT_FILE "${man}/acme-edge.1.gz" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gzip acme-edge.1 failed: ${rc}")
endif()
message(STATUS "Installing: ${man}/acme-edge.1.gz")
