package cloud

var computeNormalizers = map[string]normalizer{
	"aws_instance":                    awsInstance,
	"azurerm_linux_virtual_machine":   azureVM,
	"azurerm_windows_virtual_machine": azureVM,
	"azurerm_virtual_machine":         azureVM,
	"google_compute_instance":         googleInstance,
}

func computeFields(size string, publicIP any) map[string]any {
	return map[string]any{"size": size, "public_ip": publicIP}
}

// aws_instance: associate_public_ip_address; when unset the subnet decides
// (unknown until apply, so null).
func awsInstance(_ *plan, c *change) map[string]any {
	return computeFields(str(c.Values["instance_type"]), boolp(c.Values["associate_public_ip_address"]))
}

// Azure VMs get a public IP through a network interface: the VM is public
// when a NIC it names (by known id or configuration reference) has an
// ip_configuration with public_ip_address_id set (or to be set). Without any
// NIC of the plan to look at, public_ip is null.
func azureVM(p *plan, c *change) map[string]any {
	v := c.Values
	size := firstString(v["size"], v["vm_size"])
	ids := strs(v["network_interface_ids"])
	ids = append(ids, strs(v["primary_network_interface_id"])...)
	var public any
	for _, nic := range p.byType["azurerm_network_interface"] {
		if !matchesAny(str(nic.Values["id"]), ids) && !c.refersTo(nic, "network_interface_ids") {
			continue
		}
		if public == nil {
			public = false
		}
		for i, ipc := range list(nic.Values["ip_configuration"]) {
			set := str(get(ipc, "public_ip_address_id")) != ""
			if set || unknownAt(nic.Unknown, i) {
				public = true
			}
		}
	}
	return computeFields(size, public)
}

// unknownAt: after_unknown.ip_configuration[i].public_ip_address_id is true.
func unknownAt(unknown any, i int) bool {
	l := list(get(obj(unknown), "ip_configuration"))
	if i >= len(l) {
		return false
	}
	b, _ := obj(l[i])["public_ip_address_id"].(bool)
	return b
}

func matchesAny(id string, ids []string) bool {
	return id != "" && contains(ids, id)
}

// google_compute_instance: an access_config block on a network interface
// gives it an external IP.
func googleInstance(_ *plan, c *change) map[string]any {
	public := false
	for _, ni := range list(c.Values["network_interface"]) {
		if len(list(get(obj(ni), "access_config"))) > 0 {
			public = true
		}
	}
	return computeFields(str(c.Values["machine_type"]), public)
}
