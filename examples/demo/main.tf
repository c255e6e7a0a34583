# The demo stack: built-in resources only, so it runs anywhere without
# cloud credentials. Gantry manages its state; there is no backend block.

variable "gantry_run_id" {
  type        = string
  description = "Set by Gantry for every run (TF_VAR_gantry_run_id)."
  default     = "local"
}

variable "greeting" {
  type    = string
  default = "Hello from Gantry"
}

resource "terraform_data" "hello" {
  input = var.greeting

  provisioner "local-exec" {
    command = "echo \"${var.greeting} (run ${var.gantry_run_id})\""
  }
}

output "greeting" {
  value = terraform_data.hello.output
}

output "first_run" {
  value = terraform_data.hello.id
}
