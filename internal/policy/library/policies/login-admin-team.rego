package spacelift

# Lets members of the admin teams log in as administrators and members of
# the other listed teams log in as ordinary users.

# Edit: team names as the identity provider sends them ("org/team" for
# GitHub).
admin_teams := {"acme/platform-admins"}

user_teams := {"acme/engineering"}

admin if {
	some team in input.session.teams
	team in admin_teams
}

allow if admin

allow if {
	some team in input.session.teams
	team in user_teams
}
