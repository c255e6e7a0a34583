// Command terraform-provider-files is a test-only OpenTofu provider for
// Gantry's drift tests: its resources live as JSON files in a directory,
// shaped like cloud resources (a bucket with a public flag and tags, a
// firewall rule with a port and a source range), so that a test can
// change one behind Gantry's back and a drift run must find exactly that
// attribute. Built by the tests (never shipped) with HashiCorp's
// terraform-plugin-framework; address registry.opentofu.org/gantry-test/files.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log"
	"os"
	"path/filepath"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	pschema "github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

func main() {
	err := providerserver.Serve(context.Background(), func() provider.Provider { return &filesProvider{} },
		providerserver.ServeOpts{Address: "registry.opentofu.org/gantry-test/files"})
	if err != nil {
		log.Fatal(err)
	}
}

type filesProvider struct{}

func (p *filesProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "files"
}

func (p *filesProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = pschema.Schema{Attributes: map[string]pschema.Attribute{
		"dir": pschema.StringAttribute{Required: true, Description: "where the resources live"},
	}}
}

func (p *filesProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg struct {
		Dir types.String `tfsdk:"dir"`
	}
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	resp.ResourceData = cfg.Dir.ValueString()
}

func (p *filesProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{func() resource.Resource { return &bucket{} }, func() resource.Resource { return &rule{} }}
}

func (p *filesProvider) DataSources(context.Context) []func() datasource.DataSource { return nil }

// bucket is files_bucket: <dir>/<name>.json holding {"public", "tags"}.
type bucket struct{ dir string }

type bucketModel struct {
	ID     types.String `tfsdk:"id"`
	Name   types.String `tfsdk:"name"`
	Public types.Bool   `tfsdk:"public"`
	Tags   types.Map    `tfsdk:"tags"`
}

type bucketFile struct {
	Public bool              `json:"public"`
	Tags   map[string]string `json:"tags,omitempty"`
}

func (b *bucket) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_bucket"
}

func (b *bucket) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{Attributes: map[string]schema.Attribute{
		"id":     schema.StringAttribute{Computed: true, PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
		"name":   schema.StringAttribute{Required: true, PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
		"public": schema.BoolAttribute{Required: true},
		"tags":   schema.MapAttribute{Optional: true, ElementType: types.StringType},
	}}
}

func (b *bucket) Configure(_ context.Context, req resource.ConfigureRequest, _ *resource.ConfigureResponse) {
	if d, ok := req.ProviderData.(string); ok {
		b.dir = d
	}
}

func (b *bucket) path(name string) string { return filepath.Join(b.dir, name+".json") }

func (b *bucket) write(ctx context.Context, m bucketModel) error {
	f := bucketFile{Public: m.Public.ValueBool()}
	if !m.Tags.IsNull() {
		f.Tags = map[string]string{}
		m.Tags.ElementsAs(ctx, &f.Tags, false)
	}
	data, _ := json.MarshalIndent(f, "", "  ")
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(b.path(m.Name.ValueString()), data, 0o644)
}

func (b *bucket) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m bucketModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := b.write(ctx, m); err != nil {
		resp.Diagnostics.AddError("writing the bucket", err.Error())
		return
	}
	m.ID = m.Name
	resp.Diagnostics.Append(resp.State.Set(ctx, m)...)
}

func (b *bucket) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m bucketModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	data, err := os.ReadFile(b.path(m.Name.ValueString()))
	if errors.Is(err, fs.ErrNotExist) {
		resp.State.RemoveResource(ctx) // deleted outside OpenTofu
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("reading the bucket", err.Error())
		return
	}
	var f bucketFile
	if err := json.Unmarshal(data, &f); err != nil {
		resp.Diagnostics.AddError("reading the bucket", err.Error())
		return
	}
	m.Public = types.BoolValue(f.Public)
	if len(f.Tags) > 0 || !m.Tags.IsNull() {
		tags, d := types.MapValueFrom(ctx, types.StringType, f.Tags)
		resp.Diagnostics.Append(d...)
		m.Tags = tags
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, m)...)
}

func (b *bucket) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m bucketModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := b.write(ctx, m); err != nil {
		resp.Diagnostics.AddError("writing the bucket", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, m)...)
}

func (b *bucket) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m bucketModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if err := os.Remove(b.path(m.Name.ValueString())); err != nil && !errors.Is(err, fs.ErrNotExist) {
		resp.Diagnostics.AddError("deleting the bucket", err.Error())
	}
}

// rule is files_firewall_rule: <dir>/rule-<name>.json holding
// {"port", "cidr", "action"}.
type rule struct{ dir string }

type ruleModel struct {
	ID     types.String `tfsdk:"id"`
	Name   types.String `tfsdk:"name"`
	Port   types.Int64  `tfsdk:"port"`
	CIDR   types.String `tfsdk:"cidr"`
	Action types.String `tfsdk:"action"`
}

type ruleFile struct {
	Port   int64  `json:"port"`
	CIDR   string `json:"cidr"`
	Action string `json:"action"`
}

func (r *rule) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_firewall_rule"
}

func (r *rule) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{Attributes: map[string]schema.Attribute{
		"id":     schema.StringAttribute{Computed: true, PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
		"name":   schema.StringAttribute{Required: true, PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
		"port":   schema.Int64Attribute{Required: true},
		"cidr":   schema.StringAttribute{Required: true},
		"action": schema.StringAttribute{Required: true},
	}}
}

func (r *rule) Configure(_ context.Context, req resource.ConfigureRequest, _ *resource.ConfigureResponse) {
	if d, ok := req.ProviderData.(string); ok {
		r.dir = d
	}
}

func (r *rule) path(name string) string { return filepath.Join(r.dir, "rule-"+name+".json") }

func (r *rule) write(m ruleModel) error {
	data, _ := json.MarshalIndent(ruleFile{Port: m.Port.ValueInt64(), CIDR: m.CIDR.ValueString(), Action: m.Action.ValueString()}, "", "  ")
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(r.path(m.Name.ValueString()), data, 0o644)
}

func (r *rule) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m ruleModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := r.write(m); err != nil {
		resp.Diagnostics.AddError("writing the rule", err.Error())
		return
	}
	m.ID = m.Name
	resp.Diagnostics.Append(resp.State.Set(ctx, m)...)
}

func (r *rule) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m ruleModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	data, err := os.ReadFile(r.path(m.Name.ValueString()))
	if errors.Is(err, fs.ErrNotExist) {
		resp.State.RemoveResource(ctx)
		return
	}
	var f ruleFile
	if err == nil {
		err = json.Unmarshal(data, &f)
	}
	if err != nil {
		resp.Diagnostics.AddError("reading the rule", err.Error())
		return
	}
	m.Port, m.CIDR, m.Action = types.Int64Value(f.Port), types.StringValue(f.CIDR), types.StringValue(f.Action)
	resp.Diagnostics.Append(resp.State.Set(ctx, m)...)
}

func (r *rule) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m ruleModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := r.write(m); err != nil {
		resp.Diagnostics.AddError("writing the rule", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, m)...)
}

func (r *rule) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m ruleModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if err := os.Remove(r.path(m.Name.ValueString())); err != nil && !errors.Is(err, fs.ErrNotExist) {
		resp.Diagnostics.AddError("deleting the rule", err.Error())
	}
}
